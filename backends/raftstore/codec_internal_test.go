package raftstore

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
)

// Log entries and snapshots are written by encoding/json and read by
// goccy/go-json (Apply, Restore). Both must read the same value from every
// document the writer makes, or a node would apply something other than
// what the leader proposed: every field of a command (the restore command
// holds a whole state) is filled at random, with strings that need escapes,
// invalid UTF-8 and floats far from 1, written by encoding/json and read by
// both.
func TestDecodersAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	for i := range 2000 {
		var c command
		fillRandom(rng, reflect.ValueOf(&c).Elem(), 0)
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var std, fast command
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("command %d: encoding/json cannot read what it wrote: %v", i, err)
		}
		if err := gojson.Unmarshal(data, &fast); err != nil {
			t.Fatalf("command %d: goccy/go-json cannot read %s: %v", i, data, err)
		}
		if !reflect.DeepEqual(std, fast) {
			t.Fatalf("command %d: the decoders disagree on %s:\nencoding/json: %+v\ngoccy/go-json: %+v", i, data, std, fast)
		}
	}
}

// A snapshot as Persist writes it (a value at a time, with newlines between
// them) restores to the state it was written from: written again, it is the
// same document, byte for byte.
func TestRestoreReadsWhatPersistWrote(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 2))
	for i := range 20 {
		var d snapshotData
		fillRandom(rng, reflect.ValueOf(&d).Elem(), 0)
		// What encoding/json reads back from the state written once: a
		// state the writer can write exactly (invalid UTF-8 became U+FFFD).
		from := newFSM(100)
		from.load(d)
		var first bytes.Buffer
		if err := from.freeze().writeJSON(&first); err != nil {
			t.Fatal(err)
		}
		d = snapshotData{}
		if err := json.Unmarshal(first.Bytes(), &d); err != nil {
			t.Fatalf("snapshot %d: encoding/json cannot read what Persist wrote: %v", i, err)
		}
		from.load(d)
		var want bytes.Buffer
		if err := from.freeze().writeJSON(&want); err != nil {
			t.Fatal(err)
		}
		f := newFSM(100)
		if err := f.Restore(io.NopCloser(bytes.NewReader(want.Bytes()))); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		var got bytes.Buffer
		if err := f.freeze().writeJSON(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want.Bytes(), got.Bytes()) {
			t.Fatalf("snapshot %d: restored state differs from the snapshot's:\nwritten:  %s\nrestored: %s", i, want.Bytes(), got.Bytes())
		}
	}
}

// fillRandom sets every exported field reachable from v to a random value.
func fillRandom(rng *rand.Rand, v reflect.Value, depth int) {
	if v.Type() == reflect.TypeFor[time.Time]() {
		zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+1800), time.FixedZone("", -8*3600)}
		t := time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))])
		v.Set(reflect.ValueOf(t))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(randomString(rng))
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		v.SetInt(rng.Int64() >> (64 - bits) * []int64{1, -1}[rng.IntN(2)])
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(rng.Uint64() >> (64 - v.Type().Bits()))
	case reflect.Float32, reflect.Float64:
		f := rng.NormFloat64() * math.Pow(10, float64(rng.IntN(50)-25))
		if rng.IntN(4) == 0 {
			f = float64(rng.IntN(100))
		}
		v.SetFloat(f)
	case reflect.Pointer:
		if depth > 4 || rng.IntN(4) == 0 {
			return
		}
		p := reflect.New(v.Type().Elem())
		fillRandom(rng, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		if rng.IntN(5) == 0 {
			return
		}
		n := rng.IntN(max(1, 6-depth))
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fillRandom(rng, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if rng.IntN(5) == 0 {
			return
		}
		m := reflect.MakeMap(v.Type())
		for range rng.IntN(5) {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillRandom(rng, k, depth+1)
			fillRandom(rng, e, depth+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillRandom(rng, v.Field(i), depth+1)
			}
		}
	}
}

// randomString draws from what JSON escapes or handles apart: quotes,
// backslashes, control characters, HTML's <>&, U+2028, runes outside the
// BMP, and bytes that are not UTF-8.
func randomString(rng *rand.Rand) string {
	pieces := []string{"a", "scale-1", "10.0.0.1:80", `"`, `\`, "\n", "\t", "\x00", "\x1f", "<", ">", "&",
		"\u2028", "\u2029", "é", "日本", "😀", "\xff", "\xc3", "\ufffd", " ", "DEFAULT_GROUP", "{}", "[]", "\\u0041"}
	var b strings.Builder
	for range rng.IntN(8) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}
