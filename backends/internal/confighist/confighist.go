// Package confighist holds what the key-value drivers share to keep the
// history of configuration items: the stored form of a version, and the
// head each item keeps beside it, which numbers its versions and says
// which of them retention still keeps.
//
// A driver over a store with transactions writes, in the same transaction
// as a change, the new version's record, the head as Append returns it,
// and deletes of the versions Append drops (as many as the store allows in
// one transaction: Defer); the transaction is guarded by the head's own
// revision in the store, so that concurrent writers cannot give out one
// number twice. A driver over a store without them (Nacos) claims the
// number on the head by compare-and-set after the change, then writes the
// record: a failure in between leaves a number without a version, and a
// compare-and-set the store cannot make (Nacos' cas=check) lets two
// drivers claim one number, which is what its AtomicHistory false
// declares.
package confighist

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Head is the index of one item's history.
type Head struct {
	// Last is the number of the newest version, 0 before the first.
	Last int64 `json:"last"`
	// Kept lists the versions still stored, oldest first.
	Kept []Entry `json:"kept,omitempty"`
}

// Entry is one stored version in a head.
type Entry struct {
	Number int64 `json:"n"`
	// Expires is when retention drops the version, in Unix milliseconds.
	Expires int64 `json:"e"`
}

// DecodeHead reads a stored head; an absent head (nil) is the empty one.
func DecodeHead(b []byte) (Head, error) {
	var h Head
	if len(b) == 0 {
		return h, nil
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return Head{}, fmt.Errorf("config history head: %w", err)
	}
	return h, nil
}

// Encode returns the stored form of the head.
func (h Head) Encode() []byte {
	b, _ := json.Marshal(h)
	return b
}

// Append numbers a new version made at now, which retention r keeps until
// now+r.MaxAge, and returns the head after it, the version's number and
// the numbers of the versions it drops: those past their time and those
// beyond r.Versions.
func (h Head) Append(now time.Time, r backends.Retention) (Head, int64, []int64) {
	n := h.Last + 1
	h, drop := h.Expire(now)
	kept := append(h.Kept, Entry{Number: n, Expires: now.Add(r.MaxAge).UnixMilli()})
	if over := len(kept) - max(r.Versions, 1); over > 0 {
		for _, e := range kept[:over] {
			drop = append(drop, e.Number)
		}
		kept = kept[over:]
	}
	return Head{Last: n, Kept: kept}, n, drop
}

// Expire returns the head without the versions past their time at now
// (deferred drops among them), and their numbers.
func (h Head) Expire(now time.Time) (Head, []int64) {
	kept := make([]Entry, 0, len(h.Kept)+1)
	var drop []int64
	for _, e := range h.Kept {
		if e.Expires <= now.UnixMilli() {
			drop = append(drop, e.Number)
			continue
		}
		kept = append(kept, e)
	}
	return Head{Last: h.Last, Kept: kept}, drop
}

// Live returns the numbers of the versions the head still keeps at now:
// those it lists, but not past their time (nor deferred drops).
func (h Head) Live(now time.Time) map[int64]bool {
	live := make(map[int64]bool, len(h.Kept))
	for _, e := range h.Kept {
		if e.Expires > now.UnixMilli() {
			live[e.Number] = true
		}
	}
	return live
}

// Defer keeps one transaction within a store's limit on its operations:
// of the versions in drop it returns the first max to delete now, and
// lists the rest in the head as expired (Expires 0), which no read returns
// and the next Append drops again. deferred reports whether any were left.
func (h Head) Defer(drop []int64, max int) (_ Head, del []int64, deferred bool) {
	if len(drop) <= max {
		return h, drop, false
	}
	left := make([]Entry, 0, len(drop)-max+len(h.Kept))
	for _, n := range drop[max:] {
		left = append(left, Entry{Number: n})
	}
	h.Kept = append(left, h.Kept...)
	return h, drop[:max], true
}

// Record is the stored form of one version.
type Record struct {
	Number int64          `json:"number"`
	Op     model.ConfigOp `json:"op"`
	// Revision is the change's revision where the store cannot give it
	// from the record's own metadata (0 otherwise).
	Revision    int64     `json:"revision,omitempty"`
	Content     string    `json:"content"`
	ContentType string    `json:"contentType"`
	MD5         string    `json:"md5"`
	Author      string    `json:"author,omitempty"`
	Message     string    `json:"message,omitempty"`
	Time        time.Time `json:"time"`
	Expires     time.Time `json:"expires"`
}

// NewRecord returns the record of version n, which op made to c at now.
func NewRecord(n int64, op model.ConfigOp, c model.Config, ch backends.Change, now time.Time) Record {
	return Record{Number: n, Op: op, Content: string(c.Content), ContentType: c.ContentType,
		MD5: model.ContentMD5(c.Content), Author: ch.Author, Message: ch.Message,
		Time: now, Expires: now.Add(ch.Retention.MaxAge)}
}

// Encode returns the stored form of the record.
func (r Record) Encode() []byte {
	b, _ := json.Marshal(r)
	return b
}

// DecodeRecord reads a stored record.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil || r.Number <= 0 {
		return Record{}, fmt.Errorf("config history record: not a version (%v)", err)
	}
	return r, nil
}

// Live reports whether retention still keeps the version at now.
func (r Record) Live(now time.Time) bool { return now.Before(r.Expires) }

// Version returns the record as a version of key; rev is the revision the
// store gives the record, used when the record holds none.
func (r Record) Version(key model.ConfigKey, rev int64) model.ConfigVersion {
	if r.Revision != 0 {
		rev = r.Revision
	}
	return model.ConfigVersion{Key: key, Number: r.Number, Revision: rev, Op: r.Op, Content: []byte(r.Content),
		ContentType: r.ContentType, MD5: r.MD5, Author: r.Author, Message: r.Message, Time: r.Time}
}

// Op returns the operation of a publish: a create when the item did not
// exist.
func Op(existed bool) model.ConfigOp {
	if existed {
		return model.OpUpdate
	}
	return model.OpCreate
}

// Tracked reports whether writes to key keep history: every item but
// those of the system namespace.
func Tracked(key model.ConfigKey) bool { return key.Namespace != model.SystemNamespace }

// NumberKey is a version number as a fixed-width string, so that the
// records of an item list in number order under a store's key order.
func NumberKey(n int64) string { return fmt.Sprintf("%020d", n) }
