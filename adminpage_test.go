package troupe

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the path of Debian's chromium (.ci/run installs it), or
// skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on this machine (.ci/run installs Debian's)")
	return ""
}

// TestStatusPageInBrowser opens the admin endpoint's page in headless
// chromium and checks what a person would see: the node and its leader,
// both members, the actors per node and type, a call rate, and, after a
// node leaves, the event and its new state.
func TestStatusPageInBrowser(t *testing.T) {
	exe := chromium(t)
	c := newTestCluster(t, false, 2, func(cfg *Config) {
		if cfg.Name == "n1" {
			cfg.AdminAddr = "127.0.0.1:0"
		}
	})
	ctx := ctxT(t)
	n1, n2 := c.nodes[0], c.nodes[1]
	for i, node := range []string{"n1", "n2", "n2"} {
		r := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName("p"+string(rune('a'+i))), OnNode(node)))
		must[int](t)(Call[int](ctx, r, "Add", 1).Await(ctx))
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 60*time.Second)
	defer cancelTimeout()

	// Calls keep coming while the page watches, so its rate turns positive.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := must[Ref](t)(n1.Lookup(ctx, "pa"))
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			Call[int](ctx, r, "Add", 1).Await(ctx)
		}
	}()
	defer func() { close(stop); <-done }()
	if err := chromedp.Do(bctx,
		chromedp.Navigate("http://"+n1.AdminAddr()+"/"),
		chromedp.WaitVisible("#members tbody tr:nth-child(2)"),
		chromedp.WaitVisible("#per-type tbody tr:nth-child(2)"),
	); err != nil {
		t.Fatal(err)
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.TextContent(sel))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return v
	}
	node, leader, members, actors, perType := text("#node"), text("#leader"), text("#members tbody"), text("#actors-total"), text("#per-type tbody")
	if node != "n1" || (leader != "n1" && leader != "n2") || actors != "3" {
		t.Errorf("summary: node %q leader %q actors %q", node, leader, actors)
	}
	for _, want := range []string{"n1", "n2", "alive", "Counter"} {
		if !strings.Contains(members, want) {
			t.Errorf("members table %q lacks %q", members, want)
		}
	}
	if !strings.Contains(perType, "n2Counter2") {
		t.Errorf("actors per node and type %q: want n2 Counter 2", perType)
	}
	// The call rate shows up once the page has two samples of /metrics.
	if err := chromedp.Do(bctx, chromedp.Poll[chromedp.Void](`parseFloat(document.getElementById("rate").textContent) > 0`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("no call rate on the page: %v", err)
	}
	rate := text("#rate")
	// n2 leaves: the page lists the event and the member's new state.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n2.Stop(sctx)
	if err := chromedp.Do(bctx, chromedp.Poll[chromedp.Void](`document.getElementById("events").textContent.includes("n2 alive → left")`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the page did not show n2 leaving: %v", err)
	}
	t.Logf("rate %s calls/s; events: %s", rate, text("#events"))
}
