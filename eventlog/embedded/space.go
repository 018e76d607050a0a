package embedded

import (
	"fmt"

	"github.com/herald-webhooks/herald/eventlog"
)

// diskState is what a probe of the data file system reports.
type diskState struct {
	avail    uint64 // bytes available to this process
	readOnly bool
}

// spaceState is the writer's last reading.
type spaceState struct {
	low bool // appends are currently refused
}

// checkSpace refuses a group of n bytes with ErrUnavailable when the data
// file system is read-only or its free space would fall below the reserve,
// so that Pebble never meets ENOSPC or EROFS on its WAL (which it treats
// as fatal). It probes (one statfs, about a microsecond) before every
// group: a reading cached for even a few milliseconds let a group through
// onto a file system that another process had just filled.
func (l *Log) checkSpace(n int64) error {
	if l.opts.MinFreeBytes < 0 {
		return nil
	}
	need := uint64(l.opts.MinFreeBytes) + uint64(n)
	s := &l.space
	st, err := l.opts.diskProbe(l.dir)
	if err != nil {
		return fmt.Errorf("%w: check free space of %s: %w", eventlog.ErrUnavailable, l.dir, err)
	}
	switch {
	case st.readOnly:
		err = fmt.Errorf("%w: event log %s is on a read-only file system", eventlog.ErrUnavailable, l.dir)
	case st.avail < need:
		err = fmt.Errorf("%w: event log %s: %s free on its file system, below the %s reserve; free some space",
			eventlog.ErrUnavailable, l.dir, byteSize(st.avail), byteSize(uint64(l.opts.MinFreeBytes)))
	}
	if err != nil {
		if !s.low {
			l.logger.Warn("refusing appends", "reason", err, "free_bytes", st.avail, "reserve_bytes", l.opts.MinFreeBytes)
		}
		s.low = true
		return err
	}
	if s.low {
		l.logger.Info("accepting appends again", "free_bytes", st.avail)
		s.low = false
	}
	return nil
}

// byteSize formats n bytes for people.
func byteSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
