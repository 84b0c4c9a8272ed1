// Package quicecho is the floor the remote benchmarks are measured
// against: a bare quic-go echo over one bidirectional stream with mutual
// TLS 1.3, no troupe code on the path. Frames are a 4-byte big-endian
// length and the payload; the server writes every frame back as it reads
// it, and the client matches replies to callers by a 4-byte caller index at
// the start of each payload. It is for benchmarks only.
package quicecho

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/troupe-dev/troupe/transport"
)

const alpn = "troupe-echo"

// maxFrame bounds a frame: the echo serves benchmarks of small payloads.
const maxFrame = 1 << 20

// noReply, as the caller index of a frame, asks the server not to echo it:
// a one-way send.
const noReply = 0xffffffff

func verifier(id *transport.Identity, usage x509.ExtKeyUsage) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("quicecho: peer sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: id.CAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
}

func quicConfig() *quic.Config {
	return &quic.Config{MaxIdleTimeout: 30 * time.Second, KeepAlivePeriod: 5 * time.Second}
}

// Server is a running echo server.
type Server struct {
	ln  *quic.Listener
	udp net.PacketConn
	wg  sync.WaitGroup
}

// Listen starts an echo server on addr (e.g. "127.0.0.1:0") that accepts
// clients with a certificate of id's CA.
func Listen(addr string, id *transport.Identity) (*Server, error) {
	conf := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{id.Cert},
		NextProtos:       []string{alpn},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: verifier(id, x509.ExtKeyUsageClientAuth),
	}
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	ln, err := quic.Listen(udp, conf, quicConfig())
	if err != nil {
		udp.Close()
		return nil, err
	}
	s := &Server{ln: ln, udp: udp}
	s.wg.Go(s.accept)
	return s, nil
}

// Addr returns the server's UDP address.
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Close stops the server and waits for its goroutines.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.udp.Close()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	for {
		conn, err := s.ln.Accept(context.Background())
		if err != nil {
			return
		}
		s.wg.Go(func() {
			defer conn.CloseWithError(0, "")
			for {
				st, err := conn.AcceptStream(conn.Context())
				if err != nil {
					return
				}
				s.wg.Go(func() { echo(st) })
			}
		})
	}
}

// echo writes every frame of st back on st, one Write per frame as a
// server would reply to each request.
func echo(st *quic.Stream) {
	defer st.Close()
	r := bufio.NewReaderSize(st, 64<<10)
	buf := make([]byte, 0, 4+64)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			st.CancelRead(0)
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFrame {
			st.CancelRead(1)
			return
		}
		buf = append(buf[:0], hdr[:]...)
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(r, buf[4:]); err != nil {
			return
		}
		if n >= 4 && binary.BigEndian.Uint32(buf[4:]) == noReply {
			continue
		}
		if _, err := st.Write(buf); err != nil {
			return
		}
	}
}

// Client is one connection with one stream to an echo server; its Call is
// safe for concurrent use by up to the number of callers it was made for.
type Client struct {
	conn    *quic.Conn
	st      *quic.Stream
	wmu     sync.Mutex
	replies []chan struct{}
	wg      sync.WaitGroup
	err     error // set by the reader before it closes done
	done    chan struct{}
}

// Dial connects to the echo server at addr with id's certificate, for
// callers callers.
func Dial(ctx context.Context, addr string, id *transport.Identity, callers int) (*Client, error) {
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		NextProtos:   []string{alpn},
		// The server's certificate is verified against the CA by
		// VerifyConnection (it names a node id, not a host name).
		InsecureSkipVerify: true,
		VerifyConnection:   verifier(id, x509.ExtKeyUsageServerAuth),
	}
	conn, err := quic.DialAddr(ctx, addr, conf, quicConfig())
	if err != nil {
		return nil, fmt.Errorf("quicecho: dial %s: %w", addr, err)
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		conn.CloseWithError(0, "")
		return nil, err
	}
	c := &Client{conn: conn, st: st, replies: make([]chan struct{}, callers), done: make(chan struct{})}
	for i := range c.replies {
		c.replies[i] = make(chan struct{}, 1)
	}
	c.wg.Go(c.read)
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	r := bufio.NewReaderSize(c.st, 64<<10)
	var hdr [4]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			c.err = err
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n < 4 || n > maxFrame {
			c.err = fmt.Errorf("quicecho: bad reply length %d", n)
			return
		}
		body = append(body[:0], make([]byte, n)...)
		if _, err := io.ReadFull(r, body); err != nil {
			c.err = err
			return
		}
		caller := binary.BigEndian.Uint32(body)
		if int(caller) >= len(c.replies) {
			c.err = fmt.Errorf("quicecho: reply for unknown caller %d", caller)
			return
		}
		c.replies[caller] <- struct{}{}
	}
}

// Call sends payload (its first 4 bytes are overwritten with caller) and
// waits for its echo, or ctx. Each caller index has one call in flight.
func (c *Client) Call(ctx context.Context, caller int, payload []byte) error {
	if len(payload) < 4 {
		return errors.New("quicecho: payload shorter than 4 bytes")
	}
	binary.BigEndian.PutUint32(payload, uint32(caller))
	frame := make([]byte, 4, 4+len(payload))
	binary.BigEndian.PutUint32(frame, uint32(len(payload)))
	frame = append(frame, payload...)
	c.wmu.Lock()
	_, err := c.st.Write(frame)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-c.replies[caller]:
		return nil
	case <-c.done:
		return fmt.Errorf("quicecho: connection ended: %w", c.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Send sends payload one way (its first 4 bytes are overwritten): the
// server reads it and does not answer. A Call after Sends returns once the
// server has read them all (one stream keeps the order).
func (c *Client) Send(payload []byte) error {
	if len(payload) < 4 {
		return errors.New("quicecho: payload shorter than 4 bytes")
	}
	binary.BigEndian.PutUint32(payload, noReply)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	c.wmu.Lock()
	_, err := c.st.Write(hdr[:])
	if err == nil {
		_, err = c.st.Write(payload)
	}
	c.wmu.Unlock()
	return err
}

// Close ends the connection and waits for the reader.
func (c *Client) Close() error {
	c.st.CancelRead(0)
	err := c.conn.CloseWithError(0, "")
	c.wg.Wait()
	return err
}
