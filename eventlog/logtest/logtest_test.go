package logtest_test

import (
	"testing"

	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/logtest"
	"github.com/herald-webhooks/herald/eventlog/memlog"
)

// TestMemlog runs the suite against the reference model itself, so that a
// failing case on a real backend is known to be the backend's fault.
func TestMemlog(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log { return memlog.New() })
}
