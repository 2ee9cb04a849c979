// Package conformance is the behaviour suite every backend must pass: one
// test per line of the contract in package backends, run against a real
// store through a Harness. A driver's test calls
//
//	conformance.Run(t, harness)
//
// and gets the same checks as every other driver. The suite does not trust
// a driver's declared capabilities; it measures behaviour.
package conformance
