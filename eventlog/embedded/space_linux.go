package embedded

import "golang.org/x/sys/unix"

// statDisk reads the free space and read-only flag of dir's file system.
func statDisk(dir string) (diskState, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return diskState{}, err
	}
	return diskState{
		avail:    st.Bavail * uint64(st.Bsize),
		readOnly: st.Flags&unix.ST_RDONLY != 0,
	}, nil
}
