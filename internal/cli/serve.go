package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/api"
	"github.com/herald-webhooks/herald/egress"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/esdb"
	"github.com/herald-webhooks/herald/server"
)

// Defaults and bounds of `herald serve` flags.
const (
	defaultListen  = "127.0.0.1:8080"
	defaultDataDir = "./data"

	minRetryInterval    = 10 * time.Millisecond
	maxRetryWindow      = 30 * 24 * time.Hour
	maxBatchEvents      = 10_000
	minBatchBytes       = 1 << 10
	maxBatchBytes       = 16 << 20
	maxBatchLinger      = time.Minute
	minAttemptTimeout   = 100 * time.Millisecond
	maxAttemptTimeout   = 5 * time.Minute
	maxAPIBodyBytes     = 1 << 20
	readHeaderTimeout   = 10 * time.Second
	httpReadTimeout     = time.Minute
	httpWriteTimeout    = time.Minute
	httpIdleTimeout     = 2 * time.Minute
	maxHeaderBytes      = 64 << 10
	shutdownGracePeriod = 10 * time.Second
)

type serveFlags struct {
	listen, dataDir, eventlog, egressCA, consoleURL, logLevel string
	retryInterval, retryWindow, linger, attemptTimeout        time.Duration
	batchEvents                                               int
	batchBytes                                                byteSize
	allowPrivateEgress                                        bool
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", defaultListen, "address of the admin API (host:port)")
	fs.StringVar(&f.dataDir, "data", defaultDataDir, "data directory: secrets key, admin key, embedded log")
	fs.StringVar(&f.eventlog, "eventlog", "embedded", `event log: "embedded" (in --data) or an EventStoreDB connection string (esdb://host:2113?tls=false)`)
	fs.DurationVar(&f.retryInterval, "retry-interval", endpoint.DefaultRetryInterval, "time between attempts of a failing event")
	fs.DurationVar(&f.retryWindow, "retry-window", endpoint.DefaultRetryWindow, "how long after its first attempt an event is retried before it is abandoned")
	fs.IntVar(&f.batchEvents, "batch-max-events", endpoint.DefaultBatchMaxEvents, "most events in one delivery")
	f.batchBytes = endpoint.DefaultBatchMaxBytes
	fs.Var(&f.batchBytes, "batch-max-bytes", "most body bytes in one delivery (e.g. 1MiB)")
	fs.DurationVar(&f.linger, "batch-linger", endpoint.DefaultBatchLinger, "how long a new event waits for others to share its delivery")
	fs.DurationVar(&f.attemptTimeout, "attempt-timeout", egress.DefaultAttemptTimeout, "deadline of one delivery attempt")
	fs.BoolVar(&f.allowPrivateEgress, "allow-private-egress", false, "DEVELOPMENT ONLY: allow deliveries to loopback and private addresses, on any port")
	fs.StringVar(&f.egressCA, "egress-ca", "", "PEM file of extra root CAs trusted for deliveries")
	fs.StringVar(&f.consoleURL, "console-url", "https://login.tailscale.com/admin", "admin console base URL that event links point into")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
}

// check validates the flags, naming the first that is wrong.
func (f *serveFlags) check() error {
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return usagef("--listen %q: want host:port (%v)", f.listen, err)
	}
	if f.dataDir == "" {
		return usagef("--data: a directory is required")
	}
	switch {
	case f.retryInterval < minRetryInterval || f.retryInterval > maxRetryWindow:
		return usagef("--retry-interval %v: want %v to %v", f.retryInterval, minRetryInterval, maxRetryWindow)
	case f.retryWindow < 0 || f.retryWindow > maxRetryWindow:
		return usagef("--retry-window %v: want 0 to %v", f.retryWindow, maxRetryWindow)
	case f.batchEvents < 1 || f.batchEvents > maxBatchEvents:
		return usagef("--batch-max-events %d: want 1 to %d", f.batchEvents, maxBatchEvents)
	case f.batchBytes < minBatchBytes || f.batchBytes > maxBatchBytes:
		return usagef("--batch-max-bytes %d: want %d to %d", f.batchBytes, minBatchBytes, maxBatchBytes)
	case f.linger < 0 || f.linger > maxBatchLinger:
		return usagef("--batch-linger %v: want 0 to %v", f.linger, maxBatchLinger)
	case f.attemptTimeout < minAttemptTimeout || f.attemptTimeout > maxAttemptTimeout:
		return usagef("--attempt-timeout %v: want %v to %v", f.attemptTimeout, minAttemptTimeout, maxAttemptTimeout)
	}
	if u, err := url.Parse(f.consoleURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return usagef("--console-url %q: want an absolute http or https URL", f.consoleURL)
	}
	if f.eventlog != "embedded" && !strings.HasPrefix(f.eventlog, "esdb://") && !strings.HasPrefix(f.eventlog, "esdb+discover://") {
		return usagef(`--eventlog %q: want "embedded" or an esdb:// or esdb+discover:// connection string`, f.eventlog)
	}
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return err
	}
	var roots []*x509.Certificate
	if f.egressCA != "" {
		if roots, err = egress.LoadCertificates(f.egressCA); err != nil {
			return fmt.Errorf("--egress-ca: %w", err)
		}
	}
	if f.allowPrivateEgress {
		logger.Warn("--allow-private-egress is set: deliveries may reach loopback and private networks; never use this in production")
	}
	// Bind first: a taken port must stop Herald before its actors start
	// delivering.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer ln.Close()
	var log eventlog.Log
	if f.eventlog != "embedded" {
		l, err := esdb.Open(ctx, f.eventlog, esdb.Options{Logger: logger})
		if err != nil {
			return fmt.Errorf("--eventlog: %w", err)
		}
		defer l.Close()
		log = l
	}
	srv, err := server.New(ctx, server.Config{
		DataDir:            f.dataDir,
		Log:                log,
		Retry:              endpoint.RetryPolicy{Interval: f.retryInterval, Window: f.retryWindow},
		Batch:              endpoint.BatchPolicy{MaxEvents: f.batchEvents, MaxBytes: int(f.batchBytes), Linger: f.linger},
		AttemptTimeout:     f.attemptTimeout,
		AllowPrivateEgress: f.allowPrivateEgress,
		EgressRootCAs:      roots,
		ConsoleURL:         strings.TrimRight(f.consoleURL, "/"),
		Version:            version(),
		Logger:             logger,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	httpSrv := &http.Server{
		Handler:           api.NewHandler(srv, api.Options{Logger: logger, MaxBodyBytes: maxAPIBodyBytes, Version: version()}),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	logger.Info("herald listening", "addr", ln.Addr().String(), "version", version(), "data", f.dataDir, "eventlog", eventlogName(f.eventlog))
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGracePeriod)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("shutdown", "err", err)
	}
	return nil
}

// eventlogName is the --eventlog value fit for a log line: a connection
// string may carry credentials.
func eventlogName(s string) string {
	if s == "embedded" {
		return s
	}
	scheme, _, _ := strings.Cut(s, "://")
	return scheme
}
