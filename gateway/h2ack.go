package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
)

// h2Preface opens every HTTP/2 connection.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ackFilter is the HTTP side of the API's listener. cmux's gRPC matcher
// answers an HTTP/2 client's preface with a SETTINGS frame so that the
// client sends its request headers; when the connection turns out to be
// HTTP/2 REST, the client's ACK of those SETTINGS would reach the HTTP
// server, which never sent them and closes the connection with
// PROTOCOL_ERROR. The filter drops that one ACK.
type ackFilter struct{ net.Listener }

// Accept implements net.Listener.
func (l ackFilter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &ackConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// ackConn reads its connection through the filter: the preface, then
// frames until the first SETTINGS ACK, which it drops; then everything.
type ackConn struct {
	net.Conn
	r     *bufio.Reader
	state int          // 0: not looked at yet; 1: HTTP/2, before the ACK; 2: passing through
	buf   bytes.Buffer // read and passed, not yet returned
}

func (c *ackConn) Read(p []byte) (int, error) {
	for c.buf.Len() == 0 && c.state != 2 {
		if err := c.step(); err != nil {
			return 0, err
		}
	}
	if c.buf.Len() > 0 {
		return c.buf.Read(p)
	}
	return c.r.Read(p)
}

// step moves the filter on by one unit: the preface, or a frame.
func (c *ackConn) step() error {
	if c.state == 0 {
		if first, err := c.r.Peek(1); err != nil || first[0] != h2Preface[0] {
			c.state = 2 // HTTP/1: untouched
			return nil
		}
		head, err := c.r.Peek(len(h2Preface))
		if err != nil || string(head) != h2Preface {
			c.state = 2
			return nil
		}
		_, _ = c.r.Discard(len(h2Preface))
		c.buf.WriteString(h2Preface)
		c.state = 1
		return nil
	}
	var hdr [9]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return err
	}
	length := int(binary.BigEndian.Uint32(append([]byte{0}, hdr[:3]...)))
	typ, flags := hdr[3], hdr[4]
	payload := make([]byte, length)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return err
	}
	if typ == 0x4 && flags&0x1 != 0 && length == 0 {
		c.state = 2 // the ACK of cmux's SETTINGS: dropped
		return nil
	}
	c.buf.Write(hdr[:])
	c.buf.Write(payload)
	return nil
}
