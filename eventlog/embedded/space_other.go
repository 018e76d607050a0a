//go:build !linux

package embedded

import "github.com/cockroachdb/pebble/v2/vfs"

// statDisk reads the free space of dir's file system.
func statDisk(dir string) (diskState, error) {
	u, err := vfs.Default.GetDiskUsage(dir)
	return diskState{avail: u.AvailBytes}, err
}
