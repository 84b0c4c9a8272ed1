package transport

import (
	"crypto/x509"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIdentityFiles writes a CA and two node certificates as PEM files,
// loads them back as a command-line tool would, and connects the nodes.
func TestIdentityFiles(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	ca, err := NewCA("test cluster", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(path("ca.pem"), path("ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path("ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key file mode: %v, %v", fi.Mode(), err)
	}
	loaded, err := LoadCA(path("ca.pem"), path("ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"node a", "b/2"} // ids that need escaping in a URI
	var nodes []*QUIC
	for _, id := range ids {
		cert, key := filepath.Join(dir, url.PathEscape(id)+".pem"), filepath.Join(dir, url.PathEscape(id)+"-key.pem")
		if err := loaded.IssueFiles(id, time.Hour, cert, key); err != nil {
			t.Fatal(err)
		}
		ident, err := LoadIdentity(path("ca.pem"), cert, key)
		if err != nil {
			t.Fatal(err)
		}
		if ident.NodeID != id {
			t.Fatalf("loaded node id %q, want %q", ident.NodeID, id)
		}
		q, err := NewQUIC(Config{Identity: ident})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		nodes = append(nodes, q)
	}
	got := newCollector()
	nodes[1].Handle(KindCalls, got)
	if err := nodes[0].Send(t.Context(), Peer{ID: ids[1], Addr: nodes[1].Addr()}, KindCalls, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1, 5*time.Second)
	if got.from[0] != ids[0] {
		t.Fatalf("from = %q, want %q", got.from[0], ids[0])
	}

	if _, err := LoadCA(filepath.Join(dir, url.PathEscape(ids[0])+".pem"), filepath.Join(dir, url.PathEscape(ids[0])+"-key.pem")); err == nil {
		t.Error("LoadCA accepted a node certificate")
	}
	if _, err := LoadIdentity(path("missing.pem"), path("ca.pem"), path("ca-key.pem")); err == nil {
		t.Error("LoadIdentity accepted a missing CA file")
	}
}

func TestNodeIDOf(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name string
		uris []*url.URL
		want string
		err  error
	}{
		{"one node URI", []*url.URL{nodeURI("n1")}, "n1", nil},
		{"escaped", []*url.URL{nodeURI("a b/c")}, "a b/c", nil},
		{"other URIs ignored", []*url.URL{u("spiffe://x/y"), nodeURI("n1")}, "n1", nil},
		{"none", nil, "", ErrNoNodeID},
		{"only other schemes", []*url.URL{u("https://example.com")}, "", ErrNoNodeID},
		{"two node URIs", []*url.URL{nodeURI("n1"), nodeURI("n2")}, "", ErrNoNodeID},
		{"empty id", []*url.URL{u("troupe-node:")}, "", ErrNoNodeID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NodeIDOf(&x509.Certificate{URIs: tt.uris})
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("NodeIDOf = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestStatelessResetKey checks the key is a function of the identity: the
// same identity gives the same key, another identity another key.
func TestStatelessResetKey(t *testing.T) {
	a, b := issue(t, devCA(t), "a"), issue(t, devCA(t), "a")
	k1, err := a.statelessResetKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := a.statelessResetKey()
	k3, _ := b.statelessResetKey()
	if *k1 != *k2 {
		t.Error("same identity, different keys")
	}
	if *k1 == *k3 {
		t.Error("different private keys, same reset key")
	}
}
