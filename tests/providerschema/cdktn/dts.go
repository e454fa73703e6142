package cdktn

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// This file reads the TypeScript declarations (.d.ts) of one lib/<dir>/. The
// JavaScript has everything but two facts, which only the config interfaces
// carry:
//
//   - whether a struct-typed field ("type: struct" or "map" in the attrs) is a
//     block or an object-typed attribute: the generator gives every block the
//     description "<name> block" (resource-parser attributeForBlockType),
//     which heads the doc comment of the interface member;
//   - for the provider's structs, which have no OutputReference class and so
//     no flag comments, whether a field is optional (`readonly x?:`) or
//     required (`readonly x:`).

// dtsModule holds the interfaces of a module by name.
type dtsModule struct {
	interfaces map[string]map[string]dtsMember // interface → Terraform name → member
	// configInterface is the interface the top class's constructor takes
	// (`constructor(scope: Construct, id: string, config: FooConfig)`).
	configInterface string
}

// dtsMember is one member of a config or struct interface.
type dtsMember struct {
	optional bool // declared `readonly x?:`
	block    bool // its doc comment starts with "<name> block"
}

var (
	reInterfaceStart = regexp.MustCompile(`^export interface (\w+)(?: extends [\w.]+)? \{$`)
	reReadonly       = regexp.MustCompile(`^    readonly (\w+)(\?)?:`)
	reDocsAnchor     = regexp.MustCompile(`#([\w-]+) \w+#[\w-]+\}`)
	reConstructor    = regexp.MustCompile(`^    constructor\(scope: Construct, id: string, config\??: (\w+)\);$`)
)

// readDeclarations reads every .d.ts file under dir (recursively).
func readDeclarations(dir string) (*dtsModule, error) {
	module := &dtsModule{interfaces: map[string]map[string]dtsMember{}}
	err := filepath.WalkDir(dir, func(path string, entry os.DirEntry, err error) error {
		if err != nil || entry.IsDir() || !strings.HasSuffix(path, ".d.ts") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		module.parse(strings.Split(string(data), "\n"))
		return nil
	})
	return module, err
}

func (m *dtsModule) parse(lines []string) {
	var current map[string]dtsMember // members of the interface being read
	var doc []string                 // the doc comment read last
	inDoc := false
	for _, line := range lines {
		if match := reConstructor.FindStringSubmatch(line); match != nil {
			m.configInterface = match[1]
			continue
		}
		if match := reInterfaceStart.FindStringSubmatch(line); match != nil {
			current = map[string]dtsMember{}
			m.interfaces[match[1]] = current
			continue
		}
		if current == nil {
			continue
		}
		trimmed := strings.TrimSpace(line)
		switch {
		case line == "}":
			current = nil
		case trimmed == "/**":
			inDoc, doc = true, nil
		case trimmed == "*/":
			inDoc = false
		case inDoc:
			doc = append(doc, strings.TrimSpace(strings.TrimPrefix(trimmed, "*")))
		default:
			match := reReadonly.FindStringSubmatch(line)
			if match == nil {
				continue
			}
			name := ""
			for _, text := range doc {
				if anchor := reDocsAnchor.FindStringSubmatch(text); anchor != nil {
					name = anchor[1]
				}
			}
			if name == "" {
				doc = nil
				continue // no Terraform name to key it by
			}
			current[name] = dtsMember{
				optional: match[2] == "?",
				block:    len(doc) > 0 && doc[0] == name+" block",
			}
			doc = nil
		}
	}
}
