package troupe

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestStatusAndActors(t *testing.T) {
	c := newTestCluster(t, false, 3, nil)
	ctx := ctxT(t)
	n1 := c.nodes[0]
	var ids []string
	for i := range 7 {
		node := fmt.Sprintf("n%d", i%3+1)
		r := must[Ref](t)(n1.Spawn(ctx, "Counter", WithName(fmt.Sprintf("c%02d", i)), OnNode(node)))
		ids = append(ids, r.ID)
	}
	st, err := n1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "n1" || st.Leader == "" || len(st.Members) != 3 {
		t.Fatalf("status %+v", st)
	}
	leaders, total := 0, 0
	for i, m := range st.Members {
		if m.ID != fmt.Sprintf("n%d", i+1) || m.State != "alive" || !m.Voter || !slices.Contains(m.Types, "Counter") || m.Addr == "" {
			t.Errorf("member %+v", m)
		}
		if m.Leader {
			leaders++
			if m.ID != st.Leader {
				t.Errorf("member %s marked leader, status says %s", m.ID, st.Leader)
			}
		}
		total += m.Actors
	}
	if leaders != 1 || total != 7 || st.Registry.Actors != 7 {
		t.Errorf("%d leaders, %d actors on members, registry %+v", leaders, total, st.Registry)
	}
	if st.Registry.AppliedIndex == 0 || st.Registry.Term == 0 || st.Registry.RaftState == "" || !st.Registry.HasLease {
		t.Errorf("registry %+v", st.Registry)
	}

	// Paging: sorted ids, Next chains the pages, the last has no Next.
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 4 {
			t.Fatal("more pages than actors")
		}
		page, err := n1.Actors(ctx, ActorFilter{Limit: 3, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Actors {
			got = append(got, a.ID)
			if a.Type != "Counter" || a.State != "active" || a.Epoch == 0 || a.Node == "" {
				t.Errorf("actor %+v", a)
			}
		}
		if page.Next == "" {
			if len(page.Actors) > 3 {
				t.Fatalf("last page of %d", len(page.Actors))
			}
			break
		}
		after = page.Next
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("paged ids %v, want %v", got, ids)
	}
	onN2, err := n1.Actors(ctx, ActorFilter{Node: "n2"})
	if err != nil || len(onN2.Actors) != 2 || onN2.Actors[0].Node != "n2" {
		t.Fatalf("actors on n2: %+v, %v", onN2, err)
	}
	if none, err := n1.Actors(ctx, ActorFilter{Type: "Nope"}); err != nil || len(none.Actors) != 0 {
		t.Fatalf("actors of an unknown type: %+v, %v", none, err)
	}
	if _, err := n1.Actors(ctx, ActorFilter{Limit: maxActorPage + 1}); err == nil {
		t.Fatal("a limit over the maximum was accepted")
	}
	n3 := c.nodes[2]
	n3.Close()
	if _, err := n3.Status(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Status on a closed node: %v, want ErrClosed", err)
	}
}
