package cdktn

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/phd/kubectl-phd/tests/providerschema/schema"
)

// Result is a converted package: the schema document and what the conversion
// could not know exactly.
type Result struct {
	Document *schema.Document
	// Fallbacks lists, one line each ("resource aws_x: a.b: reason"), every
	// attribute whose type the generated code does not tell, which the
	// schema gives the type "dynamic", and every other guess beyond the
	// documented rules.
	Fallbacks []string
	// NestedAttributes counts the attributes written as nested_type
	// (protocol 6 nested attributes; see the package documentation).
	NestedAttributes int
}

// Top-level classes by the cdktn base class they extend.
const (
	baseResource  = "cdktn.TerraformResource"
	baseData      = "cdktn.TerraformDataSource"
	baseEphemeral = "cdktn.TerraformEphemeralResource"
	baseProvider  = "cdktn.TerraformProvider"
)

// Convert rebuilds the schema of the provider whose cdktn bindings are the npm
// package extracted at packageDir (the directory holding package.json and
// lib/), as `tofu providers schema -json` would print it for providerSource
// (e.g. "registry.opentofu.org/hashicorp/aws"). Every lib/<dir>/ whose
// index.js declares a class extending cdktn.TerraformResource,
// TerraformDataSource, TerraformEphemeralResource or TerraformProvider becomes
// one resource, data source, ephemeral resource or the provider
// configuration; other directories (provider-functions) are skipped.
func Convert(packageDir, providerSource string) (*Result, error) {
	lib := filepath.Join(packageDir, "lib")
	entries, err := os.ReadDir(lib)
	if err != nil {
		return nil, fmt.Errorf("%s is not an extracted cdktn provider package: %w", packageDir, err)
	}
	var dirs []string
	for _, entry := range entries {
		if entry.IsDir() {
			dirs = append(dirs, entry.Name())
		}
	}

	// Convert the directories in parallel; each is independent.
	outcomes := make([]dirOutcome, len(dirs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				outcomes[i] = convertDir(filepath.Join(lib, dirs[i]))
			}
		}()
	}
	for i := range dirs {
		work <- i
	}
	close(work)
	wg.Wait()

	provider := schema.Provider{
		ResourceSchemas:          map[string]schema.Schema{},
		DataSourceSchemas:        map[string]schema.Schema{},
		EphemeralResourceSchemas: map[string]schema.Schema{},
	}
	result := &Result{Document: &schema.Document{
		FormatVersion:   schema.FormatVersion,
		ProviderSchemas: map[string]schema.Provider{},
	}}
	sawProvider := false
	for i, outcome := range outcomes {
		if outcome.err != nil {
			return nil, fmt.Errorf("lib/%s: %w", dirs[i], outcome.err)
		}
		result.Fallbacks = append(result.Fallbacks, outcome.fallbacks...)
		result.NestedAttributes += outcome.nested
		var into map[string]schema.Schema
		switch outcome.base {
		case "":
			continue // not a resource, data source or provider
		case baseProvider:
			if sawProvider {
				return nil, fmt.Errorf("lib/%s: a second provider class", dirs[i])
			}
			if want := providerSource[strings.LastIndex(providerSource, "/")+1:]; outcome.tfType != want {
				return nil, fmt.Errorf("the package is for provider %q, not %s", outcome.tfType, providerSource)
			}
			sawProvider = true
			provider.Provider = outcome.schema
			continue
		case baseResource:
			into = provider.ResourceSchemas
		case baseData:
			into = provider.DataSourceSchemas
		case baseEphemeral:
			into = provider.EphemeralResourceSchemas
		}
		if _, dup := into[outcome.tfType]; dup {
			return nil, fmt.Errorf("lib/%s: %s declared twice", dirs[i], outcome.tfType)
		}
		into[outcome.tfType] = outcome.schema
	}
	if !sawProvider {
		return nil, fmt.Errorf("%s has no lib/provider (no class extending %s)", packageDir, baseProvider)
	}
	result.Document.ProviderSchemas[providerSource] = provider
	sort.Strings(result.Fallbacks)
	return result, nil
}

// dirOutcome is the conversion of one lib/<dir>/.
type dirOutcome struct {
	base      string // the top class's base class; "" when there is none
	tfType    string
	schema    schema.Schema
	fallbacks []string
	nested    int
	err       error
}

func convertDir(dir string) dirOutcome {
	js, err := readModule(dir)
	if err != nil {
		return dirOutcome{err: err}
	}
	var top *jsClass
	for _, class := range js.classes {
		switch class.extends {
		case baseResource, baseData, baseEphemeral, baseProvider:
			if top != nil {
				return dirOutcome{err: fmt.Errorf("two top-level classes, %s and %s", top.name, class.name)}
			}
			top = class
		}
	}
	if top == nil {
		return dirOutcome{}
	}
	if top.tfType == "" {
		return dirOutcome{err: fmt.Errorf("class %s has no tfResourceType", top.name)}
	}
	dts, err := readDeclarations(dir)
	if err != nil {
		return dirOutcome{err: err}
	}
	c := &converter{js: js, dts: dts, provider: top.extends == baseProvider}
	kind := map[string]string{baseResource: "resource", baseData: "data source", baseEphemeral: "ephemeral resource", baseProvider: "provider"}[top.extends]
	c.where = kind + " " + top.tfType
	block := c.block(c.topFields(top), "", nil, false)
	if c.err != nil {
		return dirOutcome{err: fmt.Errorf("%s: %w", c.where, c.err)}
	}
	return dirOutcome{
		base:   top.extends,
		tfType: top.tfType,
		// The schema version of the stored state is not in the generated
		// code: always 0.
		schema:    schema.Schema{Version: 0, Block: block},
		fallbacks: c.fallbacks,
		nested:    c.nested,
	}
}

// converter converts the top class of one module and the structs it uses.
type converter struct {
	js        *jsModule
	dts       *dtsModule
	provider  bool   // the provider configuration, whose structs have no classes
	where     string // "resource aws_eks_addon", for messages
	fallbacks []string
	nested    int
	err       error // the first error
}

func (c *converter) fallback(path, format string, args ...any) {
	c.fallbacks = append(c.fallbacks, fmt.Sprintf("%s: %s: %s", c.where, path, fmt.Sprintf(format, args...)))
}

func (c *converter) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

// field is one attribute or block of a block or struct, with everything the
// module says about it.
type field struct {
	name  string
	flags flags
	// member is the field's member of the top class or of the struct's
	// OutputReference class; nil for the provider's structs, which have no
	// classes.
	member *member
	// hcl is the field's entry in synthesizeHclAttributes() or the struct's
	// ToHclTerraform function; nil for a computed-only field (the generator
	// synthesizes assignable fields only).
	hcl *hclEntry
	// dts is the field's member of the config or struct interface; nil for
	// a computed-only field.
	dts *dtsMember
}

// topFields are the fields of the top class: one per member, in order. The
// provider class gets an "alias" member that is no attribute of the real
// provider (the generator adds the meta-argument; resource-parser
// resourceFrom), which is dropped.
func (c *converter) topFields(top *jsClass) []field {
	return c.fields(top.members, top.synth, c.dts.interfaces[c.dts.configInterface], c.provider)
}

// fields joins members, attrs entries and interface members by Terraform
// name. With no members (the provider's structs), the fields are the attrs
// entries, required unless the interface declares them optional.
func (c *converter) fields(members []*member, attrs []hclEntry, iface map[string]dtsMember, dropAlias bool) []field {
	byName := map[string]*hclEntry{}
	for i := range attrs {
		byName[attrs[i].name] = &attrs[i]
	}
	var fields []field
	seen := map[string]bool{}
	for _, m := range members {
		if dropAlias && m.name == "alias" {
			continue
		}
		f := field{name: m.name, flags: m.flags, member: m, hcl: byName[m.name]}
		if d, ok := iface[m.name]; ok {
			f.dts = &d
		}
		fields = append(fields, f)
		seen[m.name] = true
	}
	for i := range attrs {
		if seen[attrs[i].name] || (dropAlias && attrs[i].name == "alias") {
			continue
		}
		f := field{name: attrs[i].name, hcl: &attrs[i], flags: flags{required: true}}
		if d, ok := iface[attrs[i].name]; ok {
			f.dts = &d
			if d.optional {
				f.flags = flags{optional: true}
			}
		}
		if len(members) > 0 {
			c.fallback(f.name, "in the attrs but no member; flags guessed from the interface")
		}
		fields = append(fields, f)
	}
	return fields
}

// structFields are the fields of struct name: the members of its
// OutputReference class (which has every field, computed-only ones too),
// joined with its ToHclTerraform attrs and its interface.
func (c *converter) structFields(name string) ([]field, bool) {
	attrs, hasFunction := c.js.hclFunctions[name]
	class := c.js.classes[name+"OutputReference"]
	if class == nil && !hasFunction {
		return nil, false
	}
	var members []*member
	if class != nil {
		members = class.members
	}
	return c.fields(members, attrs, c.dts.interfaces[name], false), true
}

// shape is how a struct-typed field nests.
type shape struct {
	structName string // "" for a field of primitive or collection type
	// collection: "list", "set" or "map" (a collection of structs) or
	// "single" (one struct).
	collection string
	block      bool // a block, not an attribute
	maxOne     bool // a list or set block of at most one item
}

var (
	reListMapper = regexp.MustCompile(`listMapperHcl\((?:\w+\.)?(\w+), (true|false)\)`)
	reStructFunc = regexp.MustCompile(`\b(\w+)ToHclTerraform\b`)
)

// shapeOf tells whether f is struct-typed and how. The rules, from the
// generator (attribute-type-model, attributes-emitter):
//
//   - A struct-typed field of a resource, data source or struct is a stored
//     class: `_x = new FooOutputReference(this, "x")` for one struct,
//     `new FooList(this, "x", wrapsSet)` for a list (wrapsSet false) or set
//     (true) of them, `new FooMap(this, "x")` for a map of them. The
//     provider's fields are plain; their attrs entry then says isBlock
//     (true for every struct-typed field) and the ToHclTerraform function
//     of the struct in its value.
//   - A list or set of one struct at most (an OutputReference stored for a
//     "list" or "set" attrs entry) is a block with max_items 1: the
//     generator makes single-item types for blocks only.
//   - A list or set of structs is a block when its attrs value passes true
//     as the isBlock argument of cdktn.listMapperHcl(fn, isBlock), an
//     attribute of list or set of object type when false.
//   - A "struct" (one struct, nesting mode single) or "map" entry is a block
//     when its interface member's doc comment starts with "<name> block",
//     an attribute of object or map-of-object type otherwise.
//   - A computed-only field (no attrs entry) is an attribute, but for a
//     field whose flags are all false: a block all of whose fields are
//     computed-only (blocks are never computed, so their flags can all be
//     false; an attribute's cannot).
func (c *converter) shapeOf(f field) shape {
	var s shape
	singleItem := false
	switch {
	case f.member != nil && f.member.storedClass != "" && !strings.HasPrefix(f.member.storedClass, "cdktn."):
		class := c.js.classes[f.member.storedClass]
		if class == nil {
			c.fail("%s: unknown class %s", f.name, f.member.storedClass)
			return shape{}
		}
		switch class.extends {
		case "cdktn.ComplexObject":
			s.structName = strings.TrimSuffix(class.name, "OutputReference")
			s.collection = "single"
			singleItem = true
		case "cdktn.ComplexList":
			s.structName = strings.TrimSuffix(class.elementClass, "OutputReference")
			s.collection = "list"
			if f.member.storedWrapsSet {
				s.collection = "set"
			}
		case "cdktn.ComplexMap":
			s.structName = strings.TrimSuffix(class.elementClass, "OutputReference")
			s.collection = "map"
		default:
			c.fail("%s: stored class %s extends %s", f.name, class.name, class.extends)
			return shape{}
		}
		if s.structName == "" {
			c.fail("%s: no element class for %s", f.name, class.name)
			return shape{}
		}
	case f.hcl != nil && f.hcl.isBlock:
		match := reStructFunc.FindStringSubmatch(f.hcl.value)
		if match == nil {
			c.fail("%s: no ToHclTerraform function in %q", f.name, f.hcl.value)
			return shape{}
		}
		s.structName = upperFirst(match[1])
		s.collection = f.hcl.typ
		if s.collection == "struct" {
			s.collection = "single"
		}
	default:
		return shape{} // primitive or collection of primitives
	}

	allFalse := f.flags == flags{}
	switch {
	case f.hcl == nil:
		s.block = allFalse
	case singleItem && (f.hcl.typ == "list" || f.hcl.typ == "set"):
		s.collection, s.block, s.maxOne = f.hcl.typ, true, true
	case s.collection == "list" || s.collection == "set":
		match := reListMapper.FindStringSubmatch(f.hcl.value)
		if match == nil {
			c.fail("%s: no listMapperHcl in %q", f.name, f.hcl.value)
			return shape{}
		}
		s.block = match[2] == "true"
	default: // single or map
		s.block = f.dts != nil && f.dts.block
	}
	return s
}

// block converts fields into a block. path is the dotted path of the block
// for messages; stack the structs being converted (to stop on recursion);
// inSet whether the block is nested, at any depth, in a set block.
//
// An attribute whose type holds "dynamic" (a fallback) is left out, and
// reported, where OpenTofu and Terraform reject it: in a set block, and as
// an element of a set ("NestingSet blocks may not contain attributes of
// cty.DynamicPseudoType": a set must know its elements' type to hash them;
// configschema InternalValidate).
func (c *converter) block(fields []field, path string, stack []string, inSet bool) schema.Block {
	var block schema.Block
	for _, f := range fields {
		fieldPath := join(path, f.name)
		if why := f.member.contradiction(); why != "" {
			c.fallback(fieldPath, "flags %+v, but %s; the flags are used", f.member.flags, why)
		}
		s := c.shapeOf(f)
		if c.err != nil {
			return block
		}
		if s.structName != "" && s.block {
			nested, ok := c.nestedBlock(f, s, fieldPath, stack, inSet)
			if !ok {
				continue
			}
			if block.BlockTypes == nil {
				block.BlockTypes = map[string]schema.NestedBlock{}
			}
			block.BlockTypes[f.name] = nested
			continue
		}
		attribute := c.attribute(f, s, fieldPath, stack, f.flags)
		if dynamicInSet(attribute.Type, inSet) {
			c.fallback(fieldPath, "left out: type %s not allowed in a set", attribute.Type)
			continue
		}
		if block.Attributes == nil {
			block.Attributes = map[string]schema.Attribute{}
		}
		block.Attributes[f.name] = attribute
	}
	return block
}

// dynamicInSet tells whether the cty type typ (JSON) holds "dynamic" inside a
// set, or at all when inSet.
func dynamicInSet(typ json.RawMessage, inSet bool) bool {
	var t any
	if len(typ) == 0 || json.Unmarshal(typ, &t) != nil {
		return false
	}
	var walk func(t any, inSet bool) bool
	walk = func(t any, inSet bool) bool {
		switch t := t.(type) {
		case string:
			return t == "dynamic" && inSet
		case []any:
			if len(t) < 2 {
				return false
			}
			switch t[0] {
			case "object":
				attributes, _ := t[1].(map[string]any)
				for _, a := range attributes {
					if walk(a, inSet) {
						return true
					}
				}
				return false
			case "tuple":
				elements, _ := t[1].([]any)
				for _, e := range elements {
					if walk(e, inSet) {
						return true
					}
				}
				return false
			default: // list, set, map
				return walk(t[1], inSet || t[0] == "set")
			}
		}
		return false
	}
	return walk(t, inSet)
}

// nestedBlock converts a block field. Nesting mode: the shape's collection.
// min_items is 1 for a required list or set block (the generator marks a
// list or set block required when its min_items > 0; resource-parser
// attributeForBlockType) and max_items 1 for a single-item one; other
// counts are not in the generated code.
func (c *converter) nestedBlock(f field, s shape, path string, stack []string, inSet bool) (schema.NestedBlock, bool) {
	if contains(stack, s.structName) {
		c.fallback(path, "block of recursive struct %s left out", s.structName)
		return schema.NestedBlock{}, false
	}
	fields, ok := c.structFields(s.structName)
	if !ok {
		c.fail("%s: no class or function for struct %s", path, s.structName)
		return schema.NestedBlock{}, false
	}
	nested := schema.NestedBlock{
		NestingMode: s.collection,
		Block:       c.block(fields, path, append(stack, s.structName), inSet || s.collection == "set"),
	}
	if (s.collection == "list" || s.collection == "set") && f.flags.required {
		nested.MinItems = 1
	}
	if s.maxOne {
		nested.MaxItems = 1
	}
	return nested, true
}

// attribute converts an attribute field with the given flags.
func (c *converter) attribute(f field, s shape, path string, stack []string, fl flags) schema.Attribute {
	attribute := schema.Attribute{Required: fl.required, Optional: fl.optional, Computed: fl.computed}
	if !fl.required && !fl.optional && !fl.computed {
		c.fallback(path, "no flag set; written optional")
		attribute.Optional = true
	}
	if s.structName == "" {
		attribute.Type = mustJSON(c.primitiveType(f, path))
		return attribute
	}
	if nested, ok := c.nestedType(f, s, path, stack); ok {
		attribute.NestedType = mustJSON(nested)
		c.nested++
		return attribute
	}
	attribute.Type = mustJSON(c.structType(s, path, stack))
	return attribute
}

// nestedTypeJSON is the JSON form of a nested attribute type (OpenTofu's
// jsonprovider nestedType).
type nestedTypeJSON struct {
	Attributes  map[string]schema.Attribute `json:"attributes"`
	NestingMode string                      `json:"nesting_mode"`
}

// nestedType tells whether the struct-typed attribute f is a nested
// attribute (nested_type) rather than one of object type, and converts it.
//
// The generator gives the fields of an object type the flags of the
// attribute itself (computed, optional and required alike; resource-parser
// addAnonymousStruct), and the fields of a nested attribute their own flags
// (computed also when the attribute is). So an attribute with a field whose
// flags differ from its own is a nested attribute; one whose fields all
// share its flags is taken for an object type, which it is for every
// provider speaking plugin protocol 5 (hashicorp/aws, random), where nested
// attributes do not exist. Fields of a computed nested attribute that are
// also required are written required only (the generator's "computed" on
// them is the attribute's).
func (c *converter) nestedType(f field, s shape, path string, stack []string) (nestedTypeJSON, bool) {
	if contains(stack, s.structName) {
		return nestedTypeJSON{}, false // structType reports it
	}
	fields, ok := c.structFields(s.structName)
	if !ok {
		return nestedTypeJSON{}, false // structType reports it
	}
	nested := false
	for _, child := range fields {
		if child.flags != f.flags {
			nested = true
		}
	}
	if !nested {
		return nestedTypeJSON{}, false
	}
	result := nestedTypeJSON{Attributes: map[string]schema.Attribute{}, NestingMode: s.collection}
	stack = append(stack, s.structName)
	for _, child := range fields {
		fl := child.flags
		if fl.required {
			fl.computed = false
		}
		result.Attributes[child.name] = c.attribute(child, c.shapeOf(child), join(path, child.name), stack, fl)
	}
	return result, true
}

// structType is the cty type of an object-typed attribute: its collection
// (list, set, map, or none for a single object) of an object whose
// attributes are the struct's fields, each of primitive type or, when
// struct-typed, of object type again (flags do not apply inside an object
// type).
func (c *converter) structType(s shape, path string, stack []string) any {
	object := c.objectType(s.structName, path, stack)
	if s.collection == "single" {
		return object
	}
	return []any{s.collection, object}
}

func (c *converter) objectType(name, path string, stack []string) any {
	if contains(stack, name) {
		c.fallback(path, "recursive struct %s: dynamic", name)
		return "dynamic"
	}
	fields, ok := c.structFields(name)
	if !ok {
		c.fail("%s: no class or function for struct %s", path, name)
		return "dynamic"
	}
	stack = append(stack, name)
	attributes := map[string]any{}
	for _, child := range fields {
		childPath := join(path, child.name)
		s := c.shapeOf(child)
		if s.structName == "" {
			attributes[child.name] = c.primitiveType(child, childPath)
		} else {
			attributes[child.name] = c.structType(s, childPath, stack)
		}
	}
	return []any{"object", attributes}
}

// Getter expressions of computed-only primitive fields and their types
// (attribute-type-model getAttributeAccessFunction). A set of strings or
// numbers is read through cdktn.Fn.tolist.
var getterTypes = []struct {
	prefix string
	typ    any
}{
	{"this.getStringAttribute(", "string"},
	{"this.getNumberAttribute(", "number"},
	{"this.getBooleanAttribute(", "bool"},
	{"this.getListAttribute(", []any{"list", "string"}},
	{"cdktn.Fn.tolist(this.getListAttribute(", []any{"set", "string"}},
	{"this.getNumberListAttribute(", []any{"list", "number"}},
	{"cdktn.Token.asNumberList(cdktn.Fn.tolist(this.getNumberListAttribute(", []any{"set", "number"}},
	{"this.getStringMapAttribute(", []any{"map", "string"}},
	{"this.getNumberMapAttribute(", []any{"map", "number"}},
	{"this.getBooleanMapAttribute(", []any{"map", "bool"}},
	{"this.getAnyMapAttribute(", "dynamic"},
}

// primitiveType is the cty type of a field that is not struct-typed.
//
// An assignable field's attrs entry names it: storageClassType "string",
// "number" or "boolean" for a primitive, the element's with "List" appended
// for a list or set (the entry's type says which), "Map" appended for a map
// ("stringListMap" is a map of lists of strings; a list inside another
// collection is written list: the generator calls sets lists there).
// A computed-only field has no entry: its getter's expression
// (getterTypes) or stored class (`new cdktn.StringMap(this, "x")`) names
// it. The generator turns the cty type "dynamic" into a map of any
// ("anyMap"), which is written back as "dynamic"; its "any"
// (storageClassType "any", getter interpolationForAttribute) stands for an
// attribute it skipped (too deep) or a type it cannot express: "dynamic",
// reported as a fallback.
func (c *converter) primitiveType(f field, path string) any {
	if f.hcl != nil {
		typ, exact := storageType(f.hcl.storageClassType, f.hcl.typ)
		if !exact {
			c.fallback(path, "storageClassType %q: %s", f.hcl.storageClassType, mustJSON(typ))
		}
		return typ
	}
	if f.member != nil {
		if stored := f.member.storedClass; strings.HasPrefix(stored, "cdktn.") {
			outer := "list"
			if f.member.storedWrapsSet {
				outer = "set"
			}
			typ, exact := storageType(lowerFirst(strings.TrimPrefix(stored, "cdktn.")), outer)
			if !exact {
				c.fallback(path, "stored class %s: %s", stored, mustJSON(typ))
			}
			return typ
		}
		for _, g := range getterTypes {
			if strings.HasPrefix(f.member.getter, g.prefix) {
				return g.typ
			}
		}
		c.fallback(path, "getter %q: dynamic", f.member.getter)
		return "dynamic"
	}
	c.fallback(path, "nothing tells the type: dynamic")
	return "dynamic"
}

// storageType parses a storageClassType (or the lower-cased name of a cdktn
// collection class) into a cty type; outer is the attrs entry's type, which
// tells list from set for the outermost collection. exact is false when the
// result is a guess ("dynamic" for "any", or an unknown name).
func storageType(name, outer string) (typ any, exact bool) {
	switch name {
	case "string", "number":
		return name, true
	case "boolean":
		return "bool", true
	case "anyMap":
		return "dynamic", true
	}
	if inner, ok := strings.CutSuffix(name, "List"); ok && inner != "" {
		kind := "list"
		if outer == "set" {
			kind = "set"
		}
		element, exact := storageType(inner, "")
		return []any{kind, element}, exact
	}
	if inner, ok := strings.CutSuffix(name, "Map"); ok && inner != "" {
		element, exact := storageType(inner, "")
		return []any{"map", element}, exact
	}
	return "dynamic", false
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func contains(stack []string, name string) bool {
	for _, s := range stack {
		if s == name {
			return true
		}
	}
	return false
}

func mustJSON(v any) json.RawMessage {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps, slices and strings
	}
	return data
}
