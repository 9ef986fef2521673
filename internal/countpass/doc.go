// Package countpass is the per-node program of the taxi job: it counts rows by one CSV
// field (the 4th, passenger_count, unless --field N or --column NAME choose another), as a
// filter or over S3 keys sent by the orchestrator.
//
// # Modes
//
//	countpass [FILE...]                 filter: count FILEs (or stdin), print key,count lines
//	countpass --keys --src s3://B[/P]   S3 object -> counts -> RESULTS/<key>   ("combined")
//	countpass --download --src s3://B   S3 object -> first 5 fields -> DATA/<key> ("download")
//	countpass --count-files             DATA/<key> -> counts -> RESULTS/<key>   ("count")
//
// Inputs may be plain, gzip or zstd CSV, or Parquet (its passenger_count column), told
// apart by content. --column NAME is looked up in each object's own header (a Parquet
// file's column names), case-insensitively; an object without it fails. --field N on
// Parquet means the column standing in for CSV field N (decode.Layout: N ≤ 5). --download writes CSV in the layout count reads: the first 5 fields of
// a CSV object, and for Parquet the columns of those fields by name (decode.Layout), so
// passenger_count stays the 4th field whatever the file's column order. A CSV stream whose first 64 KiB hold a NUL byte, or whose header line
// has fewer than 4 fields, is "not CSV" and fails.
//
// # Item protocol (--keys, --download, --count-files, --map)
//
// Items arrive on stdin, one per line, as package nodejob defines them: an item line
// carries the key, its piece (or the whole object), and the size and ETag orchestrate
// listed, so the read is pinned to that version and needs no HEAD; a bare key is a whole
// object of unknown size, for use by hand. Items are read as they arrive and up to --jobs
// run at once, so the orchestrator may keep sending while earlier ones run and close stdin
// when it has no more; a cancel line stops an item (another copy finished first). A key with
// a tab or line break, or a path segment that is empty or starts with "." (merge ignores
// dotfiles), is refused.
//
// Output files are written atomically: a temporary ".<name>.tmp-*" file in the target
// directory, fsync, rename, fsync of the directory. A crash never leaves a partial result
// under the item's name, and readers skip dotfiles.
//
// stdout carries one nodejob event line per item (ok with bytes, rows and skipped rows; err
// with a class that says whether another node may succeed, or the node's disk cannot hold
// results; progress with --progress), each written whole. Human messages go to stderr.
// Exit status: 0 when every item is ok, 1 when some item failed (the others still finish),
// 2 on a usage error, 4 when the AWS configuration cannot be loaded, 130 when interrupted.
package countpass
