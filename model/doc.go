// Package model holds Junction's portable types: the keys that name services
// and configuration items, instances, configs, sessions, watch events, the
// portable errors, and the validation rules every backend and front end share.
//
// Nothing in this package knows which store is underneath; store-specific
// details live in backends/ and travel in the backend URL.
package model
