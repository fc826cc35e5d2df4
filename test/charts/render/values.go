package main

// Values as Helm computes them: user files merged in order (helm's mergeMaps), then coalesced with the
// chart's values.yaml (chartutil.CoalesceValues: user values win, tables merge, a user null deletes a
// default), then validated against values.schema.json with santhosh-tekuri/jsonschema/v6, the
// validator Helm has used since 3.18 (Helm 4 too).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v, ok := v.(map[string]any); ok {
			if bv, ok := out[k]; ok {
				if bv, ok := bv.(map[string]any); ok {
					out[k] = mergeMaps(bv, v)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

func istable(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// deepCopy through JSON keeps the chart's defaults untouched, as Helm's copystructure.Copy does.
func deepCopy(v map[string]any) map[string]any {
	raw, _ := json.Marshal(v)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return out
}

func coalesceValues(defaults, v map[string]any, warn func(string)) map[string]any {
	for key, val := range deepCopy(defaults) {
		if value, ok := v[key]; ok {
			if value == nil {
				delete(v, key)
			} else if dest, ok := value.(map[string]any); ok {
				if src, ok := val.(map[string]any); ok {
					coalesceTables(dest, src, key, warn)
				} else if val != nil {
					warn(fmt.Sprintf("warning: skipped value for %s: Not a table.", key))
				}
			}
		} else {
			v[key] = val
		}
	}
	return v
}

func coalesceTables(dst, src map[string]any, prefix string, warn func(string)) {
	for key, val := range src {
		fullkey := prefix + "." + key
		if dv, ok := dst[key]; ok && dv == nil {
			delete(dst, key)
		} else if !ok {
			dst[key] = val
		} else if istable(val) {
			if istable(dv) {
				coalesceTables(dv.(map[string]any), val.(map[string]any), fullkey, warn)
			} else {
				warn(fmt.Sprintf("warning: cannot overwrite table with non table for %s (%v)", fullkey, val))
			}
		} else if istable(dv) && val != nil {
			warn(fmt.Sprintf("warning: destination for %s is a table. Ignoring non-table value (%v)", fullkey, val))
		}
	}
}

func validateSchema(values map[string]any, schemaJSON []byte) error {
	if len(schemaJSON) == 0 {
		return nil
	}
	schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return fmt.Errorf("values.schema.json: %w", err)
	}
	compiler := jsonschema.NewCompiler()
	if err := compiler.AddResource("file:///values.schema.json", schema); err != nil {
		return fmt.Errorf("values.schema.json: %w", err)
	}
	validator, err := compiler.Compile("file:///values.schema.json")
	if err != nil {
		return fmt.Errorf("values.schema.json does not compile: %w", err)
	}
	raw, err := json.Marshal(values)
	if err != nil {
		return err
	}
	instance, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if err := validator.Validate(instance); err != nil {
		// Helm: "values don't meet the specifications of the schema(s) in the following chart(s):\n<chart>:\n- ..."
		return fmt.Errorf("values don't meet the specifications of the schema:\n%s", strings.TrimSpace(err.Error()))
	}
	return nil
}
