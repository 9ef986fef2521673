//go:build !linux

package countpass

import "os"

// mapFile does not map elsewhere: MAP_POPULATE is Linux's, and the ReadAt path is close.
func mapFile(*os.File, int64) ([]byte, func(), bool) { return nil, nil, false }
