package gateway

import (
	"context"
	"testing"
)

// Every RPC the server registers is in the rules table, so none is
// served with access control on without a rule saying what it needs (a
// method missing from it is refused to everyone: this keeps that from
// happening by accident); and no rule names a method that does not exist.
func TestEveryMethodHasARule(t *testing.T) {
	s, err := New(openStore(context.Background(), t), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	served := map[string]bool{}
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			name := "/" + svc + "/" + m.Name
			served[name] = true
			if _, ok := rules[name]; !ok {
				t.Errorf("%s has no rule", name)
			}
		}
	}
	for name := range rules {
		if !served[name] {
			t.Errorf("the rule for %s names no served method", name)
		}
	}
	if len(served) < 30 {
		t.Errorf("only %d methods served", len(served))
	}
}
