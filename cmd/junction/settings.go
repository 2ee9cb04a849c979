package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// A server's settings come from four places, in this order of precedence:
// its command line, the environment (JUNCTION_ and the flag's name in
// capitals, with _ for -), a YAML file (--config, keyed by the flags'
// names), and the flags' defaults. The flags are the one list of settings:
// the environment and the file set flags, and nothing reads a setting any
// other way.

// settingsFlags are the flags that say where the settings come from, and
// are no settings themselves.
var settingsFlags = []string{"config", "print-config", "check-config", "help"}

// secretFlags hold secrets: --print-config shows them redacted.
var secretFlags = []string{"join-token", "acl-bootstrap-reset"}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "JUNCTION_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// origin says where a setting came from.
type origin string

const (
	fromFlag origin = "flag"
	fromEnv  origin = "environment"
	fromFile origin = "file"
)

// applySettings sets the flags of fs the command line left unset: from the
// environment (lookup), then from the YAML file at path ("" for none). A
// value equal to the flag's default leaves the flag unset. Unknown keys of
// the file, and values a flag refuses, are errors naming the file's line,
// the key or the variable. It returns where each flag set came from.
func applySettings(fs *pflag.FlagSet, path string, lookup func(string) (string, bool)) (map[string]origin, error) {
	origins := map[string]origin{}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			origins[f.Name] = fromFlag
		}
		if f.Changed || slices.Contains(settingsFlags, f.Name) {
			return
		}
		if v, ok := lookup(envName(f.Name)); ok {
			// Set to the default, the flag stays unset, as from the file,
			// but the environment still wins over the file.
			if v != f.DefValue {
				if err := fs.Set(f.Name, v); err != nil {
					errs = append(errs, model.Invalid(envName(f.Name), "%q: %v", v, err))
				}
			}
			origins[f.Name] = fromEnv
		}
	})
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if path == "" {
		return origins, nil
	}
	root, err := readSettingsFile(path)
	if err != nil || root == nil {
		return origins, err
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		f := fs.Lookup(name)
		switch {
		case f == nil || slices.Contains(settingsFlags, name):
			return nil, model.Invalid("config", "%s:%d: unknown setting %q (the settings are junction server's flags, without --)", path, k.Line, name)
		case seen[name] != 0:
			return nil, model.Invalid("config", "%s:%d: %q is set twice (line %d first)", path, k.Line, name, seen[name])
		case v.Kind != yaml.ScalarNode:
			return nil, model.Invalid("config", "%s:%d: %s: a single value is expected", path, v.Line, name)
		}
		seen[name] = k.Line
		// Set by the command line or the environment, or to the default
		// (as --print-config writes it): a default value sets nothing, so
		// that a flag that conflicts with another only when set (such as
		// --data-dir with --backend) does not.
		if origins[name] != "" || v.Value == f.DefValue {
			continue
		}
		if err := fs.Set(name, v.Value); err != nil {
			return nil, model.Invalid("config", "%s:%d: %s: %q: %v", path, v.Line, name, v.Value, err)
		}
		origins[name] = fromFile
	}
	return origins, nil
}

// readSettingsFile reads the YAML mapping of a settings file; nil for an
// empty file.
func readSettingsFile(path string) (*yaml.Node, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, model.Invalid("config", "%s: %v", path, err)
	}
	if len(doc.Content) == 0 { // an empty file sets nothing
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, model.Invalid("config", "%s:%d: not a mapping of settings (flag names) to values", path, root.Line)
	}
	return root, nil
}

// fileSetting returns the value the settings file at path gives name, and
// whether it gives one.
func fileSetting(path, name string) (string, bool, error) {
	root, err := readSettingsFile(path)
	if err != nil || root == nil {
		return "", false, err
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == name {
			return root.Content[i+1].Value, true, nil
		}
	}
	return "", false, nil
}

// printSettings writes the effective settings as a YAML file --config
// reads back: every flag of fs but settingsFlags, sorted, each with its
// description. A secret that is set, and a store URL with credentials,
// are not shown: a comment says they are set, and where they come from
// should set them again (the environment, say), so that the file read
// back never holds a placeholder as a secret.
func printSettings(w io.Writer, fs *pflag.FlagSet) error {
	root := &yaml.Node{Kind: yaml.MappingNode}
	var hidden []string
	fs.VisitAll(func(f *pflag.Flag) { // VisitAll goes in lexical order
		if slices.Contains(settingsFlags, f.Name) {
			return
		}
		v := f.Value.String()
		if (slices.Contains(secretFlags, f.Name) && v != "") || (f.Name == "backend" && backends.Redact(v) != v) {
			hidden = append(hidden, f.Name)
			return
		}
		node := &yaml.Node{Kind: yaml.ScalarNode, Value: v}
		if f.Value.Type() == "string" || f.Value.Type() == "duration" {
			node.Tag = "!!str"
		}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: f.Name, HeadComment: f.Usage}, node)
	})
	if len(hidden) > 0 {
		root.HeadComment = "Set, and not shown, as they hold secrets: " + strings.Join(hidden, ", ") + "."
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}
