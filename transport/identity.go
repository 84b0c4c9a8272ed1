package transport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"
)

// NodeURIScheme is the scheme of the URI SAN that names a node in its
// certificate: "troupe-node:" + url.PathEscape(nodeID). It is the only place
// a node id is read from; the common name repeats it for humans only.
const NodeURIScheme = "troupe-node"

// ALPN is the application protocol negotiated on every connection.
const ALPN = "troupe/1"

// ErrNoNodeID means a certificate carries no node id URI SAN.
var ErrNoNodeID = errors.New("transport: certificate names no node id")

// CA is a cluster certificate authority: it signs node certificates, and a
// node accepts a peer only with a certificate it signed.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Identity is what a node needs to take part in the cluster: its certificate
// and key (whose URI SAN names NodeID) and the pool of CAs it trusts.
type Identity struct {
	NodeID string
	Cert   tls.Certificate
	CAs    *x509.CertPool
}

// NewCA creates a CA with a fresh P-256 key, valid for validFor from now.
// Zero validFor means ten years.
func NewCA(name string, validFor time.Duration) (*CA, error) {
	if validFor <= 0 {
		validFor = 10 * 365 * 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("transport: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("transport: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("transport: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// NewDevCA creates a throw-away in-memory CA for single-process clusters and
// tests. Issue identities from it for every node of the process.
func NewDevCA() (*CA, error) { return NewCA("troupe dev CA", 0) }

// Issue creates a key and a certificate naming nodeID, signed by the CA and
// valid for validFor from now. Zero validFor means one year.
func (ca *CA) Issue(nodeID string, validFor time.Duration) (*Identity, error) {
	return ca.IssueWith(nodeID, IssueOptions{ValidFor: validFor})
}

// IssueOptions qualify a certificate beyond its node id.
type IssueOptions struct {
	// ValidFor is how long the certificate is valid from now. Zero means
	// one year.
	ValidFor time.Duration
	// IPs and DNSNames are added as subject alternative names, for tools
	// that check a host name or address besides the node id (troupe itself
	// checks the node id only).
	IPs      []net.IP
	DNSNames []string
	// Client makes a client certificate: usable only to dial (TLS client
	// authentication, no server usage), for a process that calls a
	// cluster without being a member. Members accept its connections and
	// calls, and refuse its joins and Raft streams (IsClient).
	Client bool
}

// IssueWith is Issue with options.
func (ca *CA) IssueWith(nodeID string, opts IssueOptions) (*Identity, error) {
	validFor := opts.ValidFor
	if validFor <= 0 {
		validFor = 365 * 24 * time.Hour
	}
	now := time.Now()
	return ca.issue(nodeID, now.Add(-time.Minute), now.Add(validFor), opts)
}

func (ca *CA) issue(nodeID string, notBefore, notAfter time.Time, opts IssueOptions) (*Identity, error) {
	if nodeID == "" {
		return nil, errors.New("transport: empty node id")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("transport: node key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: nodeID},
		URIs:         []*url.URL{nodeURI(nodeID)},
		IPAddresses:  opts.IPs,
		DNSNames:     opts.DNSNames,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if opts.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("transport: node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("transport: node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &Identity{
		NodeID: nodeID,
		Cert:   tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		CAs:    pool,
	}, nil
}

// WriteFiles writes the CA certificate and key as PEM files; the key file is
// readable by its owner only.
func (ca *CA) WriteFiles(certFile, keyFile string) error {
	return writePEM(certFile, keyFile, ca.Cert.Raw, ca.Key)
}

// IssueFiles issues a certificate for nodeID (see Issue) and writes it and
// its key as PEM files.
func (ca *CA) IssueFiles(nodeID string, validFor time.Duration, certFile, keyFile string) error {
	return ca.IssueFilesWith(nodeID, IssueOptions{ValidFor: validFor}, certFile, keyFile)
}

// IssueFilesWith is IssueFiles with options.
func (ca *CA) IssueFilesWith(nodeID string, opts IssueOptions, certFile, keyFile string) error {
	id, err := ca.IssueWith(nodeID, opts)
	if err != nil {
		return err
	}
	return writePEM(certFile, keyFile, id.Cert.Certificate[0], id.Cert.PrivateKey.(crypto.Signer))
}

// LoadCA reads a CA written by WriteFiles.
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("transport: load CA: %w", err)
	}
	if !pair.Leaf.IsCA {
		return nil, fmt.Errorf("transport: load CA: %s is not a CA certificate", certFile)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("transport: load CA: key cannot sign")
	}
	return &CA{Cert: pair.Leaf, Key: key}, nil
}

// LoadIdentity reads a node's certificate and key (from IssueFiles) and the
// CA certificate it trusts. The node id is read from the certificate.
func LoadIdentity(caFile, certFile, keyFile string) (*Identity, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("transport: load identity: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("transport: load identity: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("transport: load identity: no certificate in %s", caFile)
	}
	id, err := NodeIDOf(pair.Leaf)
	if err != nil {
		return nil, fmt.Errorf("transport: load identity: %w", err)
	}
	return &Identity{NodeID: id, Cert: pair, CAs: pool}, nil
}

// NodeIDOf returns the node id named by a certificate's URI SAN.
func NodeIDOf(cert *x509.Certificate) (string, error) {
	var id string
	n := 0
	for _, u := range cert.URIs {
		if u.Scheme != NodeURIScheme {
			continue
		}
		s, err := url.PathUnescape(u.Opaque)
		if err != nil || s == "" {
			return "", fmt.Errorf("%w: bad URI %q", ErrNoNodeID, u)
		}
		id = s
		n++
	}
	if n != 1 {
		return "", fmt.Errorf("%w: %d node URIs", ErrNoNodeID, n)
	}
	return id, nil
}

var errNoCertificate = errors.New("no certificate")

// IsClientCert reports whether cert is a client certificate (see
// IssueOptions.Client): it may authenticate a dialler, never a server.
func IsClientCert(cert *x509.Certificate) bool {
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			return false
		}
	}
	return true
}

// verifyPeer checks a peer's certificate chain against the CA pool at now,
// for the given usage, and returns the node id it names.
func (id *Identity) verifyPeer(certs []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) (string, error) {
	if len(certs) == 0 {
		return "", errNoCertificate
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         id.CAs,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}); err != nil {
		return "", err
	}
	return NodeIDOf(certs[0])
}

// statelessResetKey derives the QUIC stateless reset key from the node's
// private key, so a node restarted with the same identity can reset the
// connections its previous life left open and peers notice at once.
func (id *Identity) statelessResetKey() (*[32]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(id.Cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("transport: stateless reset key: %w", err)
	}
	k, err := hkdf.Key(sha256.New, der, nil, "troupe quic stateless reset", 32)
	if err != nil {
		return nil, fmt.Errorf("transport: stateless reset key: %w", err)
	}
	var out [32]byte
	copy(out[:], k)
	return &out, nil
}

func nodeURI(nodeID string) *url.URL {
	return &url.URL{Scheme: NodeURIScheme, Opaque: url.PathEscape(nodeID)}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func writePEM(certFile, keyFile string, certDER []byte, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("transport: marshal key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("transport: write certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("transport: write key: %w", err)
	}
	return nil
}
