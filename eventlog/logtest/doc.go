// Package logtest is the conformance suite for eventlog.Log backends: one
// table of named behaviours (Run) and a property test against the memlog
// reference model, run the same way against every backend.
//
// A backend's tests call
//
//	logtest.Run(t, func(t *testing.T) eventlog.Log { return openFresh(t) })
//
// where open returns a new, empty log each time. Run closes every log it
// opens; open may also register its own cleanup.
package logtest
