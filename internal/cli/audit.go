package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/embedded"
	"github.com/herald-webhooks/herald/eventlog/esdb"
	"github.com/herald-webhooks/herald/projections"
	"github.com/herald-webhooks/herald/server"
)

// maxAuditIDLength bounds the ids `herald audit --event` and `--endpoint`
// accept (Herald's own are 16 and 27 characters).
const maxAuditIDLength = 64

type auditFlags struct {
	dataDir, eventlog, event, endpoint, tailnet string
}

func (f *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataDir, "data", defaultDataDir, "data directory of the Herald to audit (its embedded log is DIR/log)")
	fs.StringVar(&f.eventlog, "eventlog", "embedded", `event log: "embedded" (in --data) or an EventStoreDB connection string (esdb://host:2113?tls=false)`)
	fs.StringVar(&f.event, "event", "", "print only this event (id ev_…)")
	fs.StringVar(&f.endpoint, "endpoint", "", "print only events raised for this endpoint, and only its part of them")
	fs.StringVar(&f.tailnet, "tailnet", "", "print only this tailnet's events")
}

// check validates the flags, naming the first that is wrong.
func (f *auditFlags) check() error {
	if f.eventlog == "embedded" && f.dataDir == "" {
		return usagef("--data: a directory is required")
	}
	if f.eventlog != "embedded" && !strings.HasPrefix(f.eventlog, "esdb://") && !strings.HasPrefix(f.eventlog, "esdb+discover://") {
		return usagef(`--eventlog %q: want "embedded" or an esdb:// or esdb+discover:// connection string`, f.eventlog)
	}
	for _, id := range []struct{ flag, value string }{{"--event", f.event}, {"--endpoint", f.endpoint}} {
		if err := checkID(id.value); err != nil {
			return usagef("%s %q: %v", id.flag, id.value, err)
		}
	}
	if f.tailnet != "" {
		if err := server.ValidTailnetName(f.tailnet); err != nil {
			return usagef("--tailnet: %v", err)
		}
	}
	return nil
}

// checkID accepts what an event or endpoint id can be: letters, digits,
// '_' and '-', at most maxAuditIDLength of them ("" means no filter).
func checkID(id string) error {
	if len(id) > maxAuditIDLength {
		return fmt.Errorf("longer than %d characters", maxAuditIDLength)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("has %q; ids are letters, digits, _ and -", r)
		}
	}
	return nil
}

// audit replays the log into a projections.Deliveries and prints one JSON
// line per event (docs/audit.md).
func audit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f auditFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	log, err := openAuditLog(ctx, &f, logger)
	if err != nil {
		return err
	}
	defer log.Close()

	var d projections.Deliveries
	skipped := 0
	for {
		err := d.CatchUp(ctx, log)
		var bad *projections.RecordError
		if errors.As(err, &bad) {
			skipped++
			fmt.Fprintf(stderr, "herald audit: %v\n", bad)
			continue
		}
		if err != nil {
			return err
		}
		break
	}

	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	emit := func(h projections.EventHistory) error {
		if !f.keep(&h) {
			return nil
		}
		return enc.Encode(h)
	}
	if f.event != "" {
		h := d.Event(f.event)
		if h.ID == "" {
			return fmt.Errorf("--event %s: no such event in the log", f.event)
		}
		err = emit(h)
	} else {
		for h := range d.Events {
			if err = emit(h); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if skipped > 0 {
		return fmt.Errorf("%d records could not be decoded and were skipped (named above)", skipped)
	}
	return nil
}

// keep applies the --tailnet and --endpoint filters to h, narrowing its
// endpoints to the one asked for.
func (f *auditFlags) keep(h *projections.EventHistory) bool {
	if f.tailnet != "" && h.Tailnet != f.tailnet {
		return false
	}
	if f.endpoint == "" {
		return true
	}
	for _, del := range h.Endpoints {
		if del.Endpoint == f.endpoint {
			h.Endpoints = []projections.Delivery{del}
			return true
		}
	}
	return false
}

// openAuditLog opens the log --eventlog names.
func openAuditLog(ctx context.Context, f *auditFlags, logger *slog.Logger) (eventlog.Log, error) {
	if f.eventlog != "embedded" {
		l, err := esdb.Open(ctx, f.eventlog, esdb.Options{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("--eventlog: %w", err)
		}
		return l, nil
	}
	dir := filepath.Join(f.dataDir, server.LogDir)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		// Opening would create an empty log: say what is missing instead.
		return nil, fmt.Errorf("--data %s: no event log there (looked for the directory %s)", f.dataDir, dir)
	}
	l, err := embedded.Open(dir, embedded.Options{Logger: logger})
	if err != nil {
		if lockedByOther(err) {
			return nil, fmt.Errorf("the event log in %s is locked by another process: "+
				"herald serve is probably running on this data directory, and the embedded log "+
				"can be audited only while it is stopped (%v)", dir, err)
		}
		return nil, err
	}
	return l, nil
}

// lockedByOther reports whether opening the embedded log failed because
// someone holds its directory lock: Pebble takes an fcntl lock on
// DIR/LOCK, which fails with EAGAIN (or EACCES on some systems) when
// another process holds it, and with "lock held by current process" when
// this one does. A *os.PathError is a failure to create the lock file
// (permissions, say), not a held lock.
func lockedByOther(err error) bool {
	if strings.Contains(err.Error(), "lock held by current process") {
		return true
	}
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES)
}
