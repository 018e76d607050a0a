package cli

import (
	"context"
	"flag"
	"io"

	"github.com/herald-webhooks/herald/internal/receiver"
)

func receive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald receive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen     = fs.String("listen", receiver.DefaultListen, "HTTPS address to listen on (host:port)")
		secret     = fs.String("secret", "", "endpoint signing secret (visible to other users in ps: prefer --secret-file)")
		secretFile = fs.String("secret-file", "", "file of endpoint signing secrets, one per line, read on every request (it may be written after the receiver starts)")
		status     = fs.Int("status", receiver.DefaultStatus, "HTTP status to answer valid deliveries with")
		certOut    = fs.String("cert-out", "", "write the self-signed certificate (PEM) here, for herald serve --egress-ca")
		tolerance  = fs.Duration("tolerance", receiver.DefaultTolerance, "how far the signed time may be from now")
		logLevel   = fs.String("log-level", "info", "debug, info, warn or error")
	)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	var secrets []string
	if *secret != "" {
		secrets = append(secrets, *secret)
	}
	if len(secrets) == 0 && *secretFile == "" {
		return usagef("a secret is required: --secret S or --secret-file FILE")
	}
	return receiver.Run(ctx, receiver.Config{
		Listen: *listen, Secrets: secrets, SecretsFile: *secretFile, Status: *status, CertOut: *certOut,
		Tolerance: *tolerance, Out: stdout, Logger: logger,
	}, nil)
}
