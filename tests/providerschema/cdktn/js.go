package cdktn

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// This file reads the generated JavaScript of one lib/<dir>/ of a package: the
// compiled output of the cdktn provider generator, whose layout is fixed by
// the generator's emitters (resource-emitter, struct-emitter,
// attributes-emitter). The reader is line-based and expects exactly that
// layout; anything it does not recognise is left out, and Convert reports
// what it could not resolve.

// jsModule is what one lib/<dir>/ declares, over all its .js files (index.js
// and, for the largest resources, index-structs/*.js, which index.js
// re-exports).
type jsModule struct {
	// classes by name: the resource, data source, ephemeral resource or
	// provider class, and the OutputReference, List and Map classes of its
	// structs.
	classes map[string]*jsClass
	// hclFunctions holds, by struct name (the function name without its
	// "ToHclTerraform" suffix, first letter upper-cased), the attrs of each
	// fooToHclTerraform(struct) function: the settable fields of struct Foo.
	hclFunctions map[string][]hclEntry
}

// jsClass is one class of a module.
type jsClass struct {
	name    string
	extends string // "cdktn.TerraformResource", "cdktn.ComplexObject", ...
	// tfType is the value of `static tfResourceType = "..."` (top classes only).
	tfType string
	// members in declaration order, one per `// name - computed: ...` comment.
	members []*member
	// elementClass is, for a ComplexList or ComplexMap class, the
	// OutputReference class its get(index) or get(key) returns.
	elementClass string
	// synth holds the attrs of synthesizeHclAttributes() (top classes only).
	synth []hclEntry
}

// flags are the computed, optional and required flags of one field as the
// generator prints them in its `// name - computed: X, optional: Y,
// required: Z` comment (attributes-emitter: att.computed, att.isOptional,
// att.isRequired).
type flags struct {
	computed, optional, required bool
}

// member is one field of a class: an attribute or a block.
type member struct {
	name  string // the Terraform name, from the member comment
	flags flags
	// getter is the expression the first getter of the member returns
	// ("this.getStringAttribute('arn')", "this._timeouts", ...).
	getter string
	// storedClass is the class a stored member instantiates (`_x = new
	// FooList(this, "x", true);`), without any module prefix ("index_1.").
	storedClass string
	// storedWrapsSet is the third argument of a stored List class: true when
	// the list wraps a set.
	storedWrapsSet bool
	// settable: the member has a setter (`set x(value)` or `putX(value)`).
	settable bool
	// resettable: the member has a `resetX()` method.
	resettable bool
}

// contradiction tells how m's methods contradict its flags, if they do. The
// generator gives a member a setter (or put method) when it is assignable
// (optional or required) and a reset method when it is also not required
// (attributes-emitter); the flags are the more precise (they also tell
// computed), so this is only a check, silent for every member of
// @cdktn/provider-aws 25.7.0 and -random 15.0.1. nil has none.
func (m *member) contradiction() string {
	switch {
	case m == nil:
		return ""
	case m.flags.required && m.resettable:
		return "it has a reset method"
	case m.flags.optional && !m.resettable:
		return "it has no reset method"
	case (m.flags.optional || m.flags.required) && !m.settable:
		return "it has no setter"
	case !m.flags.optional && !m.flags.required && m.settable:
		return "it has a setter"
	}
	return ""
}

// hclEntry is one entry of an attrs object of synthesizeHclAttributes() or of
// a fooToHclTerraform(struct) function (attributes-emitter
// emitToHclTerraform):
//
//	name: { value: EXPR, isBlock: BOOL, type: "T", storageClassType: "S" },
//
// type is the type model's typeModelType ("simple", "list", "set", "map",
// "struct"); storageClassType its storedClassType ("string", "stringList",
// "numberMap", "FooList", "FooTimeouts", ...). isBlock is true for every
// struct-backed field, blocks and object-typed attributes alike.
type hclEntry struct {
	name             string
	value            string
	isBlock          bool
	typ              string
	storageClassType string
}

var (
	reClassStart  = regexp.MustCompile(`^class (\w+) extends ([\w.]+) \{$`)
	reTFType      = regexp.MustCompile(`^    static tfResourceType = "([^"]+)";$`)
	reMember      = regexp.MustCompile(`^    // (\S+) - computed: (true|false), optional: (true|false), required: (true|false)$`)
	reStored      = regexp.MustCompile(`^    _\w+ = new (?:\w+\.)*?(cdktn\.\w+|\w+)\(this, "[^"]*"(?:, (true|false))?\);$`)
	reGetter      = regexp.MustCompile(`^    get \w+\(\) \{$`)
	reReturn      = regexp.MustCompile(`^        return (.*);$`)
	reSetter      = regexp.MustCompile(`^    (?:set \w+|put\w+)\(value\) \{$`)
	reReset       = regexp.MustCompile(`^    reset\w+\(\) \{$`)
	reElementGet  = regexp.MustCompile(`^    get\((?:index|key)\) \{$`)
	reElementNew  = regexp.MustCompile(`^        return new (?:\w+\.)*?(\w+)\(`)
	reSectionEnd  = regexp.MustCompile(`^    (?:// =+|synthesize\w*\(\) \{|get internalValue\(\) \{)$`)
	reSynthStart  = regexp.MustCompile(`^    synthesizeHclAttributes\(\) \{$`)
	reFuncStart   = regexp.MustCompile(`^function (\w+)ToHclTerraform\(struct\) \{$`)
	reAttrsStart  = regexp.MustCompile(`^(\s*)const attrs = \{(\};)?$`)
	reEntryName   = regexp.MustCompile(`^\s+"?([^":\s]+)"?: \{$`)
	reEntryValue  = regexp.MustCompile(`^\s+value: (.*),$`)
	reEntryBlock  = regexp.MustCompile(`^\s+isBlock: (true|false),$`)
	reEntryType   = regexp.MustCompile(`^\s+type: "(\w+)",$`)
	reEntryStored = regexp.MustCompile(`^\s+storageClassType: "(\w+)",$`)
)

// readModule reads every .js file under dir (recursively).
func readModule(dir string) (*jsModule, error) {
	module := &jsModule{classes: map[string]*jsClass{}, hclFunctions: map[string][]hclEntry{}}
	err := filepath.WalkDir(dir, func(path string, entry os.DirEntry, err error) error {
		if err != nil || entry.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := module.parse(strings.Split(string(data), "\n")); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	return module, err
}

// parse adds the classes and ToHclTerraform functions of one file.
func (m *jsModule) parse(lines []string) error {
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if match := reClassStart.FindStringSubmatch(line); match != nil {
			end := blockEnd(lines, i)
			class, err := parseClass(match[1], match[2], lines[i+1:end])
			if err != nil {
				return fmt.Errorf("class %s: %w", match[1], err)
			}
			if _, dup := m.classes[class.name]; dup {
				return fmt.Errorf("class %s declared twice", class.name)
			}
			m.classes[class.name] = class
			i = end
			continue
		}
		if match := reFuncStart.FindStringSubmatch(line); match != nil {
			end := blockEnd(lines, i)
			entries, err := parseAttrs(lines[i+1 : end])
			if err != nil {
				return fmt.Errorf("function %sToHclTerraform: %w", match[1], err)
			}
			m.hclFunctions[upperFirst(match[1])] = entries
			i = end
		}
	}
	return nil
}

// blockEnd returns the index of the line "}" closing the top-level
// declaration that starts at line start (the generated code is indented
// consistently, so the first unindented "}" closes it).
func blockEnd(lines []string, start int) int {
	for i := start + 1; i < len(lines); i++ {
		if lines[i] == "}" {
			return i
		}
	}
	return len(lines)
}

// parseClass reads the body of one class.
func parseClass(name, extends string, body []string) (*jsClass, error) {
	class := &jsClass{name: name, extends: extends}
	var current *member // the member whose lines are being read
	gotGetter := false
	for i := 0; i < len(body); i++ {
		line := body[i]
		if match := reTFType.FindStringSubmatch(line); match != nil {
			class.tfType = match[1]
			continue
		}
		if match := reMember.FindStringSubmatch(line); match != nil {
			current = &member{name: match[1], flags: flags{
				computed: match[2] == "true", optional: match[3] == "true", required: match[4] == "true",
			}}
			class.members = append(class.members, current)
			gotGetter = false
			continue
		}
		if reSynthStart.MatchString(line) {
			entries, err := parseAttrs(body[i+1:])
			if err != nil {
				return nil, fmt.Errorf("synthesizeHclAttributes: %w", err)
			}
			class.synth = entries
			current = nil
			continue
		}
		if reElementGet.MatchString(line) && i+1 < len(body) {
			if match := reElementNew.FindStringSubmatch(body[i+1]); match != nil {
				class.elementClass = match[1]
			}
			continue
		}
		if reSectionEnd.MatchString(line) {
			current = nil
			continue
		}
		if current == nil {
			continue
		}
		switch {
		case reStored.MatchString(line):
			match := reStored.FindStringSubmatch(line)
			current.storedClass = match[1]
			current.storedWrapsSet = match[2] == "true"
		case reGetter.MatchString(line) && !gotGetter:
			gotGetter = true
			if i+1 < len(body) {
				if match := reReturn.FindStringSubmatch(body[i+1]); match != nil {
					current.getter = match[1]
				}
			}
		case reSetter.MatchString(line):
			current.settable = true
		case reReset.MatchString(line):
			current.resettable = true
		}
	}
	return class, nil
}

// parseAttrs reads the entries of the first `const attrs = {...};` in lines
// (none when the struct has no settable field: `const attrs = {};`).
func parseAttrs(lines []string) ([]hclEntry, error) {
	start := -1
	indent := ""
	for i, line := range lines {
		if match := reAttrsStart.FindStringSubmatch(line); match != nil {
			if match[2] != "" {
				return nil, nil
			}
			start, indent = i, match[1]
			break
		}
	}
	if start < 0 {
		return nil, nil
	}
	var entries []hclEntry
	for i := start + 1; i < len(lines); i++ {
		if lines[i] == indent+"};" {
			return entries, nil
		}
		match := reEntryName.FindStringSubmatch(lines[i])
		if match == nil || i+5 >= len(lines) {
			return nil, fmt.Errorf("unexpected line in attrs: %q", lines[i])
		}
		value := reEntryValue.FindStringSubmatch(lines[i+1])
		isBlock := reEntryBlock.FindStringSubmatch(lines[i+2])
		typ := reEntryType.FindStringSubmatch(lines[i+3])
		stored := reEntryStored.FindStringSubmatch(lines[i+4])
		if value == nil || isBlock == nil || typ == nil || stored == nil || strings.TrimSpace(lines[i+5]) != "}," {
			return nil, fmt.Errorf("unexpected attrs entry %s at %q", match[1], strings.Join(lines[i:i+6], "\n"))
		}
		entries = append(entries, hclEntry{
			name: match[1], value: value[1], isBlock: isBlock[1] == "true", typ: typ[1], storageClassType: stored[1],
		})
		i += 5
	}
	return nil, fmt.Errorf("unterminated attrs")
}

// upperFirst upper-cases the first letter of s (the generator's
// downcaseFirst, reversed: struct Foo has the function fooToHclTerraform).
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
