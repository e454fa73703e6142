// Package schema is the JSON form of OpenTofu provider schemas: what `tofu
// providers schema -json` prints (format_version 1.0), as OpenTofu's
// internal/command/jsonprovider writes it. terraform-provider-schema serves
// documents of this form; schema-from-cdktn writes them.
package schema

import (
	"encoding/json"
	"fmt"
	"os"
)

// FormatVersion is the only format_version this package reads and writes.
const FormatVersion = "1.0"

// Document is a whole `tofu providers schema -json` output.
type Document struct {
	FormatVersion   string              `json:"format_version"`
	ProviderSchemas map[string]Provider `json:"provider_schemas"`
}

// Provider is one provider's schemas, keyed by its address
// (registry.opentofu.org/hashicorp/aws) in Document.ProviderSchemas.
type Provider struct {
	Provider                 Schema            `json:"provider"`
	ResourceSchemas          map[string]Schema `json:"resource_schemas,omitempty"`
	DataSourceSchemas        map[string]Schema `json:"data_source_schemas,omitempty"`
	EphemeralResourceSchemas map[string]Schema `json:"ephemeral_resource_schemas,omitempty"`
}

// Schema is the schema of a provider's configuration, a resource type or a
// data source: a version (of the stored state's shape) and its top block.
type Schema struct {
	Version int64 `json:"version"`
	Block   Block `json:"block"`
}

// Block is a configuration block: its arguments (attributes) and the block
// types that may be nested in it.
type Block struct {
	Attributes      map[string]Attribute   `json:"attributes,omitempty"`
	BlockTypes      map[string]NestedBlock `json:"block_types,omitempty"`
	Description     string                 `json:"description,omitempty"`
	DescriptionKind string                 `json:"description_kind,omitempty"`
	Deprecated      bool                   `json:"deprecated,omitempty"`
}

// Attribute is one argument or computed attribute. Type is a cty type in its
// JSON form: "string", "number", "bool", "dynamic", ["list", T], ["set", T],
// ["map", T], ["object", {"name": T, ...}], ["tuple", [T, ...]].
// NestedType is set instead of Type for plugin protocol 6 nested attributes.
type Attribute struct {
	Type            json.RawMessage `json:"type,omitempty"`
	NestedType      json.RawMessage `json:"nested_type,omitempty"`
	Description     string          `json:"description,omitempty"`
	DescriptionKind string          `json:"description_kind,omitempty"`
	Required        bool            `json:"required,omitempty"`
	Optional        bool            `json:"optional,omitempty"`
	Computed        bool            `json:"computed,omitempty"`
	Sensitive       bool            `json:"sensitive,omitempty"`
	Deprecated      bool            `json:"deprecated,omitempty"`
}

// NestedBlock is a block type nested in a Block: its nesting mode ("single",
// "group", "list", "set" or "map") and, for list and set, how many blocks
// may appear (MaxItems 0: no limit).
type NestedBlock struct {
	NestingMode string `json:"nesting_mode"`
	Block       Block  `json:"block"`
	MinItems    int64  `json:"min_items,omitempty"`
	MaxItems    int64  `json:"max_items,omitempty"`
}

// Load reads a Document from path. Errors name the file.
func Load(path string) (*Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the provider schema: %w", err)
	}
	var document Document
	if err := json.Unmarshal(data, &document); err != nil {
		return nil, fmt.Errorf("%s is not a provider schema: %w", path, err)
	}
	if document.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: format_version %q, expected %q", path, document.FormatVersion, FormatVersion)
	}
	return &document, nil
}

// Only returns the document's one provider and its address; an error when it
// holds none or several.
func (d *Document) Only() (string, *Provider, error) {
	if len(d.ProviderSchemas) != 1 {
		return "", nil, fmt.Errorf("expected the schema of exactly one provider, found %d", len(d.ProviderSchemas))
	}
	for source, provider := range d.ProviderSchemas {
		return source, &provider, nil
	}
	panic("unreachable")
}
