package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/troupe-dev/troupe"
	"github.com/troupe-dev/troupe/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  troupe ca init   [-dir DIR] [-name NAME] [-valid DURATION] [-force]
  troupe cert issue NAME [-dir DIR] [-ip IP,...] [-dns NAME,...] [-valid DURATION] [-client] [-force]
  troupe node      -name NAME [-addr HOST:PORT] [-join ADDR,...] [-dir DIR] [-data DIR] [-admin HOST:PORT] [-drain DURATION] [-log LEVEL]
  troupe ready     [-admin HOST:PORT] [-name NAME -dir DIR] [-wait DURATION]
  troupe status    [-admin HOST:PORT] [-name NAME -dir DIR] [-o table|json]
  troupe members   [-admin HOST:PORT] [-name NAME -dir DIR] [-o table|json]
  troupe actors    [-admin HOST:PORT] [-name NAME -dir DIR] [-type T] [-node N] [-limit N] [-o table|json]
  troupe expel ID  -admin HOST:PORT -name NAME [-dir DIR]
  troupe gen       -type T[=NAME],... [-pkg DIR] [-o FILE]
`

// errUsage is a command line that names no known command.
var errUsage = errors.New("troupe: unknown command")

// run is the whole command; it returns the exit status: 0 done, 1 failed,
// 2 bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var err error
	switch {
	case len(args) >= 2 && args[0] == "ca" && args[1] == "init":
		err = caInit(args[2:], stdout, stderr)
	case len(args) >= 2 && args[0] == "cert" && args[1] == "issue":
		err = certIssue(args[2:], stdout, stderr)
	case len(args) >= 1 && args[0] == "node":
		err = node(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "ready":
		err = ready(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "status":
		err = status(ctx, args[1:], stdout, stderr, false)
	case len(args) >= 1 && args[0] == "members":
		err = status(ctx, args[1:], stdout, stderr, true)
	case len(args) >= 1 && args[0] == "actors":
		err = actors(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "expel":
		err = expel(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && args[0] == "gen":
		err = gen(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = errUsage
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "%v\n%s", err, usage)
		return 2
	case errors.As(err, new(*flagError)):
		fmt.Fprintln(stderr, err)
		return 2
	}
	fmt.Fprintln(stderr, err)
	return 1
}

// flagError is a bad flag or argument.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &flagError{err}
	}
	return nil
}

func caFiles(dir string) (cert, key string) {
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
}

func nodeFiles(dir, name string) (cert, key string) {
	return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
}

// refuseOverwrite fails when one of files exists and force is not set.
func refuseOverwrite(force bool, files ...string) error {
	if force {
		return nil
	}
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("troupe: %s exists (use -force to replace it)", f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("troupe: %w", err)
		}
	}
	return nil
}

func caInit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("troupe ca init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory for ca.pem and ca-key.pem")
	name := fs.String("name", "troupe CA", "the CA's common name")
	valid := fs.Duration("valid", 10*365*24*time.Hour, "validity from now")
	force := fs.Bool("force", false, "replace existing files")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &flagError{fmt.Errorf("troupe ca init: unexpected arguments %q", fs.Args())}
	}
	cert, key := caFiles(*dir)
	if err := refuseOverwrite(*force, cert, key); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("troupe: %w", err)
	}
	ca, err := transport.NewCA(*name, *valid)
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(cert, key); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (%s, valid until %s)\n", cert, key, *name, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func certIssue(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("troupe cert issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory of the CA's files and for NAME.pem and NAME-key.pem")
	ips := fs.String("ip", "", "comma-separated IP addresses to add as subject alternative names")
	dns := fs.String("dns", "", "comma-separated DNS names to add as subject alternative names")
	valid := fs.Duration("valid", 365*24*time.Hour, "validity from now")
	force := fs.Bool("force", false, "replace existing files")
	client := fs.Bool("client", false, "a client certificate (Config.Client): it may call and spawn, never join, replicate or host")
	// The node id comes first (troupe cert issue n1 -ip ...), or after the
	// flags.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return &flagError{fmt.Errorf("troupe cert issue: unexpected arguments %q", fs.Args())}
	}
	if name == "" {
		return &flagError{errors.New("troupe cert issue: a node id is required: troupe cert issue NAME")}
	}
	opts := transport.IssueOptions{ValidFor: *valid, Client: *client}
	for _, s := range splitList(*ips) {
		ip := net.ParseIP(s)
		if ip == nil {
			return &flagError{fmt.Errorf("troupe cert issue: -ip: %q is not an IP address", s)}
		}
		opts.IPs = append(opts.IPs, ip)
	}
	opts.DNSNames = splitList(*dns)
	caCert, caKey := caFiles(*dir)
	ca, err := transport.LoadCA(caCert, caKey)
	if err != nil {
		return fmt.Errorf("troupe: the CA (run troupe ca init first): %w", err)
	}
	cert, key := nodeFiles(*dir, name)
	if err := refuseOverwrite(*force, cert, key); err != nil {
		return err
	}
	if err := ca.IssueFilesWith(name, opts, cert, key); err != nil {
		return err
	}
	what := "node"
	if *client {
		what = "client"
	}
	fmt.Fprintf(stdout, "wrote %s and %s for %s %s (valid for %s)\n", cert, key, what, name, *valid)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func node(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("troupe node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "node id (its certificate is DIR/NAME.pem)")
	addr := fs.String("addr", "127.0.0.1:0", "UDP address to listen on")
	join := fs.String("join", "", "comma-separated addresses of members to join through; empty starts a new cluster")
	dir := fs.String("dir", ".", "directory of ca.pem, NAME.pem and NAME-key.pem")
	data := fs.String("data", "", "directory for the registry's Raft log and snapshots; empty keeps them in memory")
	drain := fs.Duration("drain", 10*time.Second, "how long a graceful stop may take")
	admin := fs.String("admin", "", "HOST:PORT of the node's admin endpoint (HTTPS with mutual TLS); empty: none")
	level := fs.String("log", "info", "log level: debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &flagError{fmt.Errorf("troupe node: unexpected arguments %q", fs.Args())}
	}
	if *name == "" {
		return &flagError{errors.New("troupe node: -name is required")}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return &flagError{fmt.Errorf("troupe node: -log: %w", err)}
	}
	cert, key := nodeFiles(*dir, *name)
	caCert, _ := caFiles(*dir)
	cfg := troupe.Config{
		Name:      *name,
		Addr:      *addr,
		Join:      splitList(*join),
		DataDir:   *data,
		TLS:       troupe.TLS{CAFile: caCert, CertFile: cert, KeyFile: key},
		Logger:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv})),
		AdminAddr: *admin,
		// A dedicated registry member: the voters are chosen among these
		// before application nodes.
		Voter: troupe.VoterPrefer,
	}
	n, err := troupe.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("troupe node %s: %w", *name, err)
	}
	// No type is registered: the node is a registry member that hosts no
	// actors. READY: the node runs (a node restarted from -data may still
	// wait for its peers); SERVING: it is a member holding its lease.
	if a := n.AdminAddr(); a != "" {
		fmt.Fprintf(stdout, "READY %s admin=%s\n", n.Addr(), a)
	} else {
		fmt.Fprintf(stdout, "READY %s\n", n.Addr())
	}
	if err := n.Ready(ctx); err != nil && ctx.Err() == nil {
		n.Close()
		return fmt.Errorf("troupe node %s: %w", *name, err)
	} else if err == nil {
		fmt.Fprintf(stdout, "SERVING %s\n", n.Addr())
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := n.Stop(sctx); err != nil { // drains, leaves, closes
		return fmt.Errorf("troupe node %s: stop: %w", *name, err)
	}
	return nil
}

// adminFlags are the flags of the commands that read a node's admin
// endpoint.
type adminFlags struct {
	admin, dir, name, out string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.admin, "admin", "127.0.0.1:7070", "HOST:PORT of a node's admin endpoint (Config.AdminAddr)")
	fs.StringVar(&a.dir, "dir", ".", "directory of ca.pem, NAME.pem and NAME-key.pem (with -name)")
	fs.StringVar(&a.name, "name", "", "present the certificate DIR/NAME.pem (HTTPS with mutual TLS); empty: plain HTTP to a loopback endpoint")
	fs.StringVar(&a.out, "o", "table", "output: table or json")
}

// get reads path from the admin endpoint into v.
func (a *adminFlags) get(ctx context.Context, path string, v any) error {
	return a.do(ctx, http.MethodGet, path, v)
}

// do sends a request to the admin endpoint and decodes its JSON answer
// into v.
func (a *adminFlags) do(ctx context.Context, method, path string, v any) error {
	if a.out != "table" && a.out != "json" {
		return &flagError{fmt.Errorf("troupe: -o %q: want table or json", a.out)}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	scheme := "http"
	if a.name != "" {
		cert, key := nodeFiles(a.dir, a.name)
		caCert, _ := caFiles(a.dir)
		id, err := transport.LoadIdentity(caCert, cert, key)
		if err != nil {
			return fmt.Errorf("troupe: client certificate: %w", err)
		}
		hc.Transport = &http.Transport{TLSClientConfig: troupe.AdminClientTLS(id)}
		scheme = "https"
	}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, scheme+"://"+a.admin+path, nil)
	if err != nil {
		return &flagError{fmt.Errorf("troupe: -admin %q: %w", a.admin, err)}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("troupe: node unreachable at %s: %w", a.admin, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("troupe: reading %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("troupe: %s%s: %s: %s", a.admin, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("troupe: %s%s: %w", a.admin, path, err)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func status(ctx context.Context, args []string, stdout, stderr io.Writer, membersOnly bool) error {
	cmd := "status"
	if membersOnly {
		cmd = "members"
	}
	fs := flag.NewFlagSet("troupe "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	var st troupe.Status
	if err := a.get(ctx, "/status", &st); err != nil {
		return err
	}
	if a.out == "json" {
		if membersOnly {
			return printJSON(stdout, st.Members)
		}
		return printJSON(stdout, st)
	}
	if !membersOnly {
		r := st.Registry
		fmt.Fprintf(stdout, "node %s, leader %s, raft %s term %d, applied %d, %d actors, lease %v\n\n",
			st.Node, orNone(st.Leader), r.RaftState, r.Term, r.AppliedIndex, r.Actors, r.HasLease)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDR\tSTATE\tVOTER\tLEADER\tACTORS\tTYPES")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.ID, m.Addr, m.State, yes(m.Voter), yes(m.Leader), m.Actors, strings.Join(m.Types, ","))
	}
	return tw.Flush()
}

// ready waits until the node behind -admin is ready (a member holding
// its lease), asking its /ready until -wait ends.
func ready(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("troupe ready", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	wait := fs.Duration("wait", time.Minute, "how long to wait for the node to be ready")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	var last error
	for {
		// Each request waits on the node's side (the admin endpoint's
		// ?wait), so this loop turns only when the node is unreachable
		// or its wait ended.
		step := 5 * time.Second
		if d, ok := ctx.Deadline(); ok && time.Until(d) < step {
			step = max(time.Until(d), 0).Round(time.Millisecond)
		}
		var res map[string]string
		err := a.get(ctx, "/ready?wait="+step.String(), &res)
		if err == nil {
			fmt.Fprintf(stdout, "ready %s\n", res["ready"])
			return nil
		}
		if errors.As(err, new(*flagError)) {
			return err
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("troupe ready: not ready within %v: %w", *wait, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func actors(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("troupe actors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	typ := fs.String("type", "", "only actors of this type")
	node := fs.String("node", "", "only actors placed on this node")
	limit := fs.Int("limit", 1000, "at most this many actors (pages of up to 1000 are fetched)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *limit <= 0 {
		return &flagError{errors.New("troupe actors: -limit must be positive")}
	}
	var all []troupe.ActorInfo
	after := ""
	for len(all) < *limit {
		q := url.Values{"limit": {strconv.Itoa(min(1000, *limit-len(all)))}}
		for k, v := range map[string]string{"type": *typ, "node": *node, "after": after} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var page troupe.ActorPage
		if err := a.get(ctx, "/actors?"+q.Encode(), &page); err != nil {
			return err
		}
		all = append(all, page.Actors...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if a.out == "json" {
		return printJSON(stdout, all)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tNODE\tSTATE\tEPOCH\tRESTARTS")
	for _, x := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", x.ID, x.Type, x.Node, x.State, x.Epoch, x.Restarts)
	}
	return tw.Flush()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func expel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("troupe expel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	}
	if id == "" {
		return &flagError{errors.New("troupe expel: the member id is required: troupe expel ID")}
	}
	if a.name == "" {
		return &flagError{errors.New("troupe expel: -name is required (expel is served only over mutual TLS)")}
	}
	var res map[string]string
	if err := a.do(ctx, http.MethodPost, "/expel?"+url.Values{"id": {id}}.Encode(), &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "expelled %s: its id is denied from now on\n", id)
	return nil
}
