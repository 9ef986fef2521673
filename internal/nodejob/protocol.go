package nodejob

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Item is one unit of work: a whole object, or one piece of a split object.
//
// orchestrate sends the node program one line per item on stdin,
//
//	item\t<part>\t<start>\t<end>\t<size>\t<etag>\t<key>
//
// with part -1 for a whole object (result name: the key) and N >= 0 for piece N (bytes
// [start, end) of the object; result name: PartName). size and etag are the object's as
// listed, so the node reads exactly that version and skips a HEAD; etag may be empty and size
// -1 when unknown. The key comes last and may hold anything but a tab or line break. A line
// that is not an item line is a bare key (a whole object of unknown size), for use by hand.
//
//	cancel\t<result name>
//
// asks the node to stop that item (another copy finished first); it answers with err.
type Item struct {
	Key        string
	Part       int // -1: the whole object
	Start, End int64
	Size       int64 // -1: unknown
	ETag       string
}

// Whole reports whether the item is a whole object.
func (it Item) Whole() bool { return it.Part < 0 }

// Result is the item's result name (its path under the job directory).
func (it Item) Result() string {
	if it.Whole() {
		return it.Key
	}
	return PartName(it.Key, it.Part)
}

// Encode returns the item's protocol line, without the newline.
func (it Item) Encode() string {
	return fmt.Sprintf("item\t%d\t%d\t%d\t%d\t%s\t%s", it.Part, it.Start, it.End, it.Size, it.ETag, it.Key)
}

// EncodeCancel returns the line that cancels the item with result name id.
func EncodeCancel(id string) string { return "cancel\t" + id }

// ErrLine marks a protocol line that cannot be parsed.
var ErrLine = errors.New("malformed protocol line")

// ParseInput parses one line orchestrate sent: an item (or bare key), or a cancel (item is
// then zero and cancel the result name).
func ParseInput(line string) (it Item, cancel string, err error) {
	line = strings.TrimSuffix(line, "\r")
	if id, ok := strings.CutPrefix(line, "cancel\t"); ok {
		return Item{}, id, nil
	}
	rest, ok := strings.CutPrefix(line, "item\t")
	if !ok {
		if err := ValidKey(line); err != nil {
			return Item{}, "", err
		}
		return Item{Key: line, Part: -1, End: -1, Size: -1}, "", nil
	}
	f := strings.SplitN(rest, "\t", 6)
	if len(f) != 6 {
		return Item{}, "", fmt.Errorf("%w: %q", ErrLine, line)
	}
	var n [4]int64
	for i := range n {
		if n[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return Item{}, "", fmt.Errorf("%w: %q", ErrLine, line)
		}
	}
	it = Item{Part: int(n[0]), Start: n[1], End: n[2], Size: n[3], ETag: f[4], Key: f[5]}
	if it.Part < -1 || n[0] > 99999 || it.Size < -1 || it.Start < 0 || (it.Part >= 0 && it.End < it.Start) ||
		strings.ContainsAny(it.ETag, "\t") {
		return Item{}, "", fmt.Errorf("%w: %q", ErrLine, line)
	}
	if err := ValidKey(it.Key); err != nil {
		return Item{}, "", err
	}
	return it, "", nil
}

// Event is one line the node program writes on stdout:
//
//	ok\t<id>\t<bytes>\t<rows>\t<skipped>[\tcached]   the item is done; bytes: source bytes read;
//	                                               rows counted; skipped: rows too short
//	err\t<id>\t<class>\t<message>                   the item failed; class says what to do
//	progress\t<id>\t<bytes>                        source bytes read so far, at most once a
//	                                               second per item, never after its ok/err
//	node\t<class>\t<message>                       about the node itself (e.g. a spot notice)
//
// id is the item's result name. Readers ignore line types they do not know.
type Event struct {
	Kind    string // "ok", "err", "progress", "node"
	ID      string
	Bytes   int64
	Rows    int64
	Skipped int64
	Cached  bool
	Class   Class
	Msg     string
}

// Class says what a failure means for the job.
type Class string

const (
	// Data: the input is bad; another node would fail the same way.
	Data Class = "data"
	// Retry: this attempt failed (a command's non-zero exit, a signal, a cancel); another
	// node may succeed.
	Retry Class = "retry"
	// Sick: the node cannot hold results (a full or failing disk): it leaves the job.
	Sick Class = "sick"
	// Notice: the node is about to go away (a spot interruption notice).
	Notice Class = "notice"
)

// Encode returns the event's protocol line, without the newline. Messages lose their tabs
// and line breaks so that the line stays one line.
func (e Event) Encode() string {
	msg := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(e.Msg)
	switch e.Kind {
	case "ok":
		s := fmt.Sprintf("ok\t%s\t%d\t%d\t%d", e.ID, e.Bytes, e.Rows, e.Skipped)
		if e.Cached {
			s += "\tcached"
		}
		return s
	case "err":
		return fmt.Sprintf("err\t%s\t%s\t%s", e.ID, e.Class, msg)
	case "progress":
		return fmt.Sprintf("progress\t%s\t%d", e.ID, e.Bytes)
	case "node":
		return fmt.Sprintf("node\t%s\t%s", e.Class, msg)
	}
	panic("nodejob: unknown event kind " + e.Kind)
}

// ParseEvent parses one line of the node program's stdout; ok is false for lines of kinds
// this build does not know or cannot parse.
func ParseEvent(line string) (e Event, ok bool) {
	kind, rest, _ := strings.Cut(line, "\t")
	e.Kind = kind
	switch kind {
	case "ok":
		f := strings.Split(rest, "\t")
		if len(f) < 4 || f[0] == "" {
			return Event{}, false
		}
		e.ID = f[0]
		var err1, err2, err3 error
		e.Bytes, err1 = strconv.ParseInt(f[1], 10, 64)
		e.Rows, err2 = strconv.ParseInt(f[2], 10, 64)
		e.Skipped, err3 = strconv.ParseInt(f[3], 10, 64)
		e.Cached = len(f) > 4 && f[4] == "cached"
		return e, err1 == nil && err2 == nil && err3 == nil
	case "err":
		f := strings.SplitN(rest, "\t", 3)
		if len(f) != 3 || f[0] == "" {
			return Event{}, false
		}
		e.ID, e.Class, e.Msg = f[0], Class(f[1]), f[2]
		return e, true
	case "progress":
		id, b, found := strings.Cut(rest, "\t")
		n, err := strconv.ParseInt(b, 10, 64)
		if !found || id == "" || err != nil {
			return Event{}, false
		}
		e.ID, e.Bytes = id, n
		return e, true
	case "node":
		c, msg, found := strings.Cut(rest, "\t")
		if !found {
			return Event{}, false
		}
		e.Class, e.Msg = Class(c), msg
		return e, true
	}
	return Event{}, false
}
