package stack

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
)

// ReadEnvFile reads a JSON env file: either the form `make invoke` and
// `sam local invoke` read ({"Parameters": {...}, "<Function>": {...}},
// every section merged, the functions' over Parameters) or a flat object
// of variables.
func ReadEnvFile(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	var flat map[string]string
	if json.Unmarshal(raw, &flat) == nil {
		return flat, nil
	}
	var sections map[string]map[string]string
	if err := json.Unmarshal(raw, &sections); err != nil {
		return nil, fmt.Errorf("--env-file %s: not a JSON object of variables, nor of sections of variables "+
			`(such as {"Parameters": {"BUCKET": "..."}}): %v`, path, err)
	}
	env := maps.Clone(sections["Parameters"])
	if env == nil {
		env = map[string]string{}
	}
	for _, name := range slices.Sorted(maps.Keys(sections)) {
		if name != "Parameters" {
			maps.Copy(env, sections[name])
		}
	}
	return env, nil
}
