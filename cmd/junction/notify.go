package main

import (
	"fmt"
	"net"
	"os"
)

// sdNotify tells the service manager the server's state (READY=1,
// STOPPING=1, ...) over the datagram socket NOTIFY_SOCKET names, as
// systemd's sd_notify does for a Type=notify unit; without NOTIFY_SOCKET
// it does nothing. A name starting with @ is an abstract socket.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
