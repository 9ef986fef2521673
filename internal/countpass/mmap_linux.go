package countpass

import (
	"os"
	"syscall"
)

// mapFile maps the file read-only, populated up front (one kernel call instead of a fault
// per page), so the rows are counted in place: reading would copy every byte once more,
// which costs about as much CPU as counting. ok is false where mapping fails.
func mapFile(f *os.File, size int64) (data []byte, unmap func(), ok bool) {
	if size <= 0 || size != int64(int(size)) {
		return nil, nil, false
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, nil, false
	}
	return data, func() { syscall.Munmap(data) }, true
}
