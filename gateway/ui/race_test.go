//go:build race

package ui_test

// raceEnabled: the server in the test process runs under the race
// detector, several times slower than a real build.
const raceEnabled = true
