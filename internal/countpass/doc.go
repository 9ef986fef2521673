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
// # Key protocol (--keys, --download, --count-files)
//
// Keys arrive on stdin, one per line (a trailing "\r" is dropped, blank lines are ignored).
// They are full object keys in the bucket of --src (or paths relative to --data); with a
// prefix in --src, a key outside it is refused. Keys are read as they arrive and up to
// --jobs run at once, so the orchestrator may keep sending keys while earlier ones run and
// close stdin when it has no more. A key with a tab, or a path segment that is empty, "."
// or "..", or starts with "." (merge ignores dotfiles), is refused.
//
// Output files are written atomically: a temporary ".<name>.tmp-*" file in the target
// directory, fsync, rename, fsync of the directory. A crash never leaves a partial result
// under the key's name, and readers skip dotfiles.
//
// stdout carries one line per event, fields separated by tabs, each line written whole:
//
//	ok\t<key>\t<bytes>\t<rows>            the key is done; bytes: the source's size as
//	                                      stored (compressed for gzip/zstd; the whole
//	                                      object for Parquet, of which only the
//	                                      passenger_count column is fetched); rows: rows
//	                                      counted (--download: lines written, header
//	                                      included)
//	ok\t<key>\t0\t0\tcached               --skip-existing: the output file already existed
//	err\t<key>\t<message>                 the key failed; message is one line
//	progress\t<key>\t<bytes>              --progress only: source bytes read so far, at
//	                                      most once a second per key, never after its ok/err
//
// Lines of different keys interleave in completion order. Readers should ignore line types
// they do not know. Human messages (skipped-row counts, errors) go to stderr. Exit status: 0 when every key is ok, 1 when some key failed (the
// others still finish), 2 on a usage error, 4 when the AWS configuration cannot be loaded,
// 130 when interrupted.
package countpass
