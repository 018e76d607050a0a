package receiver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/herald-webhooks/herald/internal/atomicfile"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

const (
	// DefaultListen is the address used when Config.Listen is empty.
	DefaultListen = "127.0.0.1:8443"
	// DefaultStatus is the answer to a valid delivery when Config.Status is 0.
	DefaultStatus = http.StatusOK
	// DefaultTolerance is the accepted clock difference between the signed
	// timestamp and now when Config.Tolerance is 0.
	DefaultTolerance = 5 * time.Minute
	// MaxBodyBytes is the largest request body accepted; larger ones get 413.
	MaxBodyBytes = 8 << 20

	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = time.Minute
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
	certFileMode      = 0o644
)

// Config configures a receiver. Only Secrets is required.
type Config struct {
	// Listen is the TCP address to serve HTTPS on (DefaultListen if empty).
	Listen string
	// Secrets are the endpoint secrets; a delivery signed with any of them
	// is accepted (as during a rotation overlap). At least one, none empty.
	Secrets []string
	// SecretsFile, if set, is read on every request: one secret per line,
	// added to Secrets. It may not exist yet when the receiver starts (the
	// secret comes from registering the endpoint, which needs the
	// receiver's certificate first), and a rotated secret can be written
	// to it without a restart.
	SecretsFile string
	// Status is the answer to a valid delivery (DefaultStatus if 0); 200-599.
	Status int
	// CertOut, if set, is where the certificate is written as PEM.
	CertOut string
	// Tolerance bounds |now - signed time| (DefaultTolerance if 0).
	Tolerance time.Duration
	// Out receives one compact JSON line per event (os.Stdout if nil).
	Out io.Writer
	// Logger logs the address, rejections and deliveries (slog.Default if nil).
	Logger *slog.Logger
	// Now reads the time for signature checks (time.Now if nil). The
	// certificate's validity always follows the wall clock, as TLS peers do.
	Now func() time.Time
}

// withDefaults fills in the defaults and validates cfg.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if len(cfg.Secrets) == 0 && cfg.SecretsFile == "" {
		return cfg, errors.New("no secret: at least one is required")
	}
	if fi, err := os.Stat(cfg.SecretsFile); cfg.SecretsFile != "" && err == nil && !fi.Mode().IsRegular() {
		return cfg, fmt.Errorf("secrets file %s is not a regular file", cfg.SecretsFile)
	}
	for i, s := range cfg.Secrets {
		if s == "" {
			return cfg, fmt.Errorf("secret %d is empty", i+1)
		}
	}
	if cfg.Status == 0 {
		cfg.Status = DefaultStatus
	}
	if cfg.Status < 200 || cfg.Status > 599 {
		return cfg, fmt.Errorf("status %d: want 200-599", cfg.Status)
	}
	if cfg.Tolerance == 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.Tolerance < 0 {
		return cfg, fmt.Errorf("tolerance %v: want a positive duration", cfg.Tolerance)
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// Run serves HTTPS on cfg.Listen until ctx is cancelled, then shuts down
// gracefully and returns nil. It generates a self-signed certificate, writes
// it to cfg.CertOut if set, starts listening and then calls ready (if not
// nil) with the address actually bound, before answering any request.
func Run(ctx context.Context, cfg Config, ready func(addr string)) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	cert, certPEM, err := selfSignedCert(host, time.Now())
	if err != nil {
		return err
	}
	if cfg.CertOut != "" {
		if err := atomicfile.Write(cfg.CertOut, certPEM, certFileMode); err != nil {
			return fmt.Errorf("write certificate: %w", err)
		}
	}
	h, err := NewHandler(cfg)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler: h,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		},
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()

	addr := ln.Addr().String()
	cfg.Logger.Info("receiving webhooks", "addr", addr, "cert", cfg.CertOut,
		"secrets", len(cfg.Secrets), "status", cfg.Status, "tolerance", cfg.Tolerance)
	if ready != nil {
		ready(addr)
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		<-served
		return fmt.Errorf("shut down %s: %w", addr, err)
	}
	<-served // http.ErrServerClosed
	cfg.Logger.Info("receiver stopped", "addr", addr)
	return nil
}
