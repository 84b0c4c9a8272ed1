package troupe

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement/placementtest"
	"github.com/troupe-dev/troupe/transport"
)

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAdminEndpoint(t *testing.T) {
	c := newTestCluster(t, false, 2, func(cfg *Config) {
		if cfg.Name == "n1" {
			cfg.AdminAddr = "127.0.0.1:0"
		}
	})
	ctx := ctxT(t)
	n1 := c.nodes[0]
	must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("a1"), OnNode("n2")))
	a2 := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("a2"), OnNode("n1")))
	for range 3 {
		must[int](t)(Call[int](ctx, a2, "Add", 1).Await(ctx))
	}
	if _, err := Call[int](ctx, a2, "Add", "x").Await(ctx); err == nil {
		t.Fatal("a call with a bad argument succeeded")
	}
	if c.nodes[1].AdminAddr() != "" || n1.AdminAddr() == "" {
		t.Fatalf("admin addresses %q, %q", n1.AdminAddr(), c.nodes[1].AdminAddr())
	}
	base := "http://" + n1.AdminAddr()
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()

	code, body := get(t, hc, base+"/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Node != "n1" || len(st.Members) != 2 || st.Registry.Actors != 2 {
		t.Fatalf("/status: %d %v %s", code, err, body)
	}
	code, body = get(t, hc, base+"/actors?limit=1")
	var page ActorPage
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Actors) != 1 || page.Actors[0].ID != "a1" || page.Next != "a1" {
		t.Fatalf("/actors: %d %v %s", code, err, body)
	}
	if code, _ := get(t, hc, base+"/actors?limit=x"); code != http.StatusBadRequest {
		t.Fatalf("/actors?limit=x: %d", code)
	}
	if code, body := get(t, hc, base+"/ready"); code != 200 || !strings.Contains(body, `"ready": "n1"`) {
		t.Fatalf("/ready: %d %s", code, body)
	}
	if code, _ := get(t, hc, base+"/ready?wait=forever"); code != http.StatusBadRequest {
		t.Fatalf("/ready?wait=forever: %d", code)
	}
	code, body = get(t, hc, base+"/metrics")
	for _, want := range []string{
		`troupe_registry_members{status="alive"} 2`,
		`troupe_registry_actors{node="n2"} 1`,
		`troupe_registry_lease 1`,
		`troupe_registry_applied_index `,
		`troupe_registry_leader{node=`,
		`troupe_transport_frames_sent_total{peer="n2"}`,
		`troupe_remote_replies_dropped_total 0`,
		`go_goroutines `,
		`troupe_calls_total{method="Add",outcome="ok",type="Counter"} 3`,
		`troupe_activations{type="Counter"} 1`,
		`troupe_mailbox_calls{type="Counter"} 0`,
		`troupe_calls_total{method="Add",outcome="bad_arguments",type="Counter"} 1`,
		`troupe_registry_leader_changes_total 1`,
		`troupe_registry_lease_renewals_total `,
		`troupe_registry_lease_lapses_total 0`,
		`troupe_registry_restart_graces_total 0`,
		`troupe_registry_placements{state="active"} 2`,
		`troupe_registry_placements{state="stopped"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code != 200 || t.Failed() {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
}

func TestAdminEndpointRefusesNonLoopbackWithoutTLS(t *testing.T) {
	net := transport.NewMemNetwork()
	tr, err := net.Join("solo")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cfg := fastTimeouts
	cfg.Transport, cfg.AdminAddr = tr, "0.0.0.0:0"
	n, err := Start(ctxT(t), cfg)
	if err == nil {
		n.Close()
		t.Fatal("an admin endpoint on 0.0.0.0 without TLS was started")
	}
	if !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("error %v does not say why", err)
	}
}

// With TLS configured the endpoint is HTTPS with mutual TLS: a caller
// without a certificate, or with one of another CA, is refused; one of the
// cluster CA is served.
func TestAdminEndpointMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := transport.NewCA("admin-test", 0)
	if err != nil {
		t.Fatal(err)
	}
	files := func(name string) TLS {
		f := TLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+"-key.pem")}
		if err := ca.IssueFiles(name, 0, f.CertFile, f.KeyFile); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if err := ca.WriteFiles(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	cfg := fastTimeouts
	cfg.TLS, cfg.AdminAddr = files("m1"), "127.0.0.1:0"
	n, err := Start(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	url := "https://" + n.AdminAddr() + "/status"

	bare := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := bare.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("a caller without a certificate got %s", resp.Status)
	}
	other, _ := transport.NewCA("other", 0)
	stranger, _ := other.Issue("ops", 0)
	strangerCl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{stranger.Cert}}}}
	if resp, err := strangerCl.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("a caller with another CA's certificate got %s", resp.Status)
	}
	ops, err := ca.Issue("ops", 0)
	if err != nil {
		t.Fatal(err)
	}
	good := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: AdminClientTLS(ops)}}
	code, body := get(t, good, url)
	if code != 200 || !strings.Contains(body, `"node": "m1"`) {
		t.Fatalf("cluster-CA caller: %d %s", code, body)
	}
	good.CloseIdleConnections()
	bare.CloseIdleConnections()
	strangerCl.CloseIdleConnections()
}

// The mailbox gauge counts calls waiting on an actor, and drops back once
// they ran.
func TestActivationsAndMailbox(t *testing.T) {
	c := newTestCluster(t, false, 1, nil)
	ctx := ctxT(t)
	n := c.nodes[0]
	r := must[Ref](t)(n.Spawn(ctx, "Counter", WithName("busy")))
	blockCtx, unblock := context.WithCancel(ctx)
	defer unblock()
	var futs []*Future[struct{}]
	for range 3 {
		futs = append(futs, Call[struct{}](blockCtx, r, "Block"))
	}
	queued := func() int {
		for _, a := range n.ep.Activations() {
			if a.Type == "Counter" {
				return a.Queued
			}
		}
		return -1
	}
	if err := placementtest.Wait(10*time.Second, func() bool { return queued() == 3 }); err != nil {
		t.Fatalf("mailbox gauge %d, want 3 calls on the blocked actor: %v", queued(), err)
	}
	unblock()
	for _, f := range futs {
		f.Await(ctx)
	}
	if err := placementtest.Wait(10*time.Second, func() bool { return queued() == 0 }); err != nil {
		t.Fatalf("mailbox gauge %d after the calls ran, want 0: %v", queued(), err)
	}
}
