package troupe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/troupe-dev/troupe/transport"
)

// adminPage is the status page at /: plain HTML and a script that polls
// /status, /actors and /metrics every 2 s; no asset from elsewhere.
//
//go:embed admin_page.html
var adminPage []byte

// adminServer is the opt-in HTTP endpoint of Config.AdminAddr: / (a status
// page a person can read at a glance), /metrics
// (Prometheus text format), /status (Node.Status as JSON) and /actors
// (Node.Actors as JSON; query parameters type, node, after, limit).
//
// Without TLS configured for the node it listens on a loopback address
// only, in plain HTTP; with TLS (Config.TLS), on any address, in HTTPS with
// the node's certificate, and only to callers that present a certificate of
// the cluster CA (mutual TLS), as the nodes do among themselves.
type adminServer struct {
	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup
}

// AdminAddr returns the admin endpoint's address, "" without one.
func (n *Node) AdminAddr() string {
	if n.admin == nil {
		return ""
	}
	return n.admin.ln.Addr().String()
}

func (n *Node) startAdmin() error {
	addr := n.cfg.AdminAddr
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("troupe: Config.AdminAddr: %w", err)
	}
	var tlsConf *tls.Config
	if id := n.ident; id != nil && !n.cfg.TLS.isZero() {
		tlsConf = &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{id.Cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    id.CAs,
		}
	} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("troupe: Config.AdminAddr %s is not a loopback address: configure Config.TLS to serve the admin endpoint beyond this host (mutual TLS with the cluster CA)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("troupe: admin endpoint: %w", err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		_, _ = w.Write(adminPage)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Status(r.Context())
		writeJSON(w, st, err)
	})
	if tlsConf != nil {
		// The one write: only over mutual TLS, where the caller holds a
		// certificate of the cluster CA (as trusted as a node).
		mux.HandleFunc("POST /expel", func(w http.ResponseWriter, r *http.Request) {
			id := r.URL.Query().Get("id")
			if id == "" {
				http.Error(w, "expel: the id parameter is required", http.StatusBadRequest)
				return
			}
			caller := ""
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				caller, _ = transport.NodeIDOf(r.TLS.PeerCertificates[0])
			}
			n.warn("expel asked through the admin endpoint", "peer", id, "by", caller, "remote", r.RemoteAddr)
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			defer cancel()
			if err := n.Expel(ctx, id); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			writeJSON(w, map[string]string{"expelled": id}, nil)
		})
	}
	// /ready answers 200 once the node is ready (Node.Ready) and 503 with
	// the reason before; ?wait=DURATION (at most a minute) waits for it.
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		var d time.Duration
		if ws := r.URL.Query().Get("wait"); ws != "" {
			var perr error
			if d, perr = time.ParseDuration(ws); perr != nil || d < 0 {
				http.Error(w, "wait: want a duration such as 30s", http.StatusBadRequest)
				return
			}
		}
		err := n.readyNow()
		if err != nil && d > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), min(d, time.Minute))
			err = n.Ready(ctx)
			cancel()
			if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
				err = n.readyNow()
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]string{"ready": n.id}, nil)
	})
	mux.HandleFunc("GET /actors", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := ActorFilter{Type: q.Get("type"), Node: q.Get("node"), After: q.Get("after")}
		if l := q.Get("limit"); l != "" {
			v, err := strconv.Atoi(l)
			if err != nil {
				http.Error(w, "limit: "+err.Error(), http.StatusBadRequest)
				return
			}
			f.Limit = v
		}
		page, err := n.Actors(r.Context(), f)
		writeJSON(w, page, err)
	})
	// Refused handshakes (no certificate, another CA) are the http
	// package's errors: they go to the node's log at Warn, or nowhere.
	errLog := log.New(io.Discard, "", 0)
	if l := n.cfg.Logger; l != nil {
		errLog = slog.NewLogLogger(l.With("node", n.id, "component", "admin").Handler(), slog.LevelWarn)
	}
	a := &adminServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: errLog,
		BaseContext: func(net.Listener) context.Context { return n.ctx }}}
	a.wg.Go(func() { _ = a.srv.Serve(ln) })
	n.admin = a
	n.log("admin endpoint", "addr", ln.Addr().String(), "tls", tlsConf != nil)
	return nil
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrClosed):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// close stops the endpoint, waiting at most a second for requests in
// progress.
func (a *adminServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
	a.wg.Wait()
}

// AdminClientTLS is the TLS configuration of a client of a node's admin
// endpoint: it presents id's certificate and accepts a server whose
// certificate the cluster CA signed (it names a node id, not a host name).
func AdminClientTLS(id *transport.Identity) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{id.Cert},
		InsecureSkipVerify: true, // verified below against the cluster CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("troupe: admin endpoint sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: id.CAs, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
}
