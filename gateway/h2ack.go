package gateway

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
)

// h2Preface opens every HTTP/2 connection.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ackFilter is the HTTP side of the API's listener. cmux's gRPC matcher
// answers each SETTINGS frame an HTTP/2 client sends before its first
// HEADERS with a SETTINGS frame of its own, so that the client sends its
// request; when the connection turns out to be HTTP/2 REST, the client's
// ACKs of those would reach the HTTP server, which never sent them and
// closes the connection with PROTOCOL_ERROR. The filter drops those ACKs:
// they are the client's first ones, as cmux's SETTINGS precede the HTTP
// server's on the wire.
type ackFilter struct{ net.Listener }

// Accept implements net.Listener.
func (l ackFilter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &ackConn{Conn: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

// The filter's states.
const (
	ackUnknown = iota // the first bytes not read yet
	ackFrames         // HTTP/2: reading frame headers
	ackPass           // HTTP/1, or every cmux ACK dropped: untouched
)

// ackConn reads its connection through the filter. It keeps no frame's
// payload: headers are passed or dropped, payloads streamed through.
type ackConn struct {
	net.Conn
	r       *bufio.Reader
	state   int
	out     []byte // read and passed on, not yet returned
	pending int    // payload bytes of the current frame still to pass
	// settings counts the client's SETTINGS frames cmux answered (those
	// before its first HEADERS), dropped the ACKs dropped of them.
	settings, dropped int
	headers           bool
}

// maxFrame is the largest frame a client may send before it has the
// server's SETTINGS (RFC 9113, SETTINGS_MAX_FRAME_SIZE's initial value);
// a header claiming more while the filter reads frames ends the
// connection.
const maxFrame = 16384

func (c *ackConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 && c.pending == 0 && c.state != ackPass {
		if err := c.step(); err != nil {
			return 0, err
		}
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	if c.pending > 0 && len(p) > c.pending {
		p = p[:c.pending]
	}
	n, err := c.r.Read(p)
	if c.pending > 0 {
		c.pending -= n
	}
	return n, err
}

// step moves the filter on: through the preface, or past a frame header.
func (c *ackConn) step() error {
	if c.state == ackUnknown {
		for i := 1; i <= len(h2Preface); i++ {
			head, err := c.r.Peek(i)
			if err != nil || head[i-1] != h2Preface[i-1] {
				c.state = ackPass // not HTTP/2 (or closed): as it is
				return nil
			}
		}
		_, _ = c.r.Discard(len(h2Preface))
		c.out = append(c.out, h2Preface...)
		c.state = ackFrames
		return nil
	}
	var hdr [9]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return err
	}
	length := int(hdr[0])<<16 | int(binary.BigEndian.Uint16(hdr[1:3]))
	typ, flags := hdr[3], hdr[4]
	if length > maxFrame {
		return io.ErrUnexpectedEOF
	}
	switch {
	case typ == 0x4 && flags&0x1 != 0 && length == 0 && c.dropped < c.settings:
		c.dropped++ // the ACK of one of cmux's SETTINGS
	default:
		switch {
		case typ == 0x4 && flags&0x1 == 0 && !c.headers:
			c.settings++
		case typ == 0x1:
			c.headers = true
		}
		c.out = append(c.out, hdr[:]...)
		c.pending = length
	}
	if c.headers && c.dropped == c.settings {
		c.state = ackPass
	}
	return nil
}
