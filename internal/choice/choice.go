// Package choice is the text form of replaylink's fixed-value settings
// (--mark auto|all|problems, --restart never|on-failure|always, ...). Each
// setting is a small integer type declared once, in the package that acts
// on it, with its names in a list; its UnmarshalText and String call Parse
// and Name here, so that config, the flags' help and the package agree on
// the words and an unknown word is refused with the list of allowed ones.
package choice

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse sets *dst to the index of text in names, or refuses text with an
// error that lists names.
func Parse[T ~uint8](dst *T, text []byte, names []string) error {
	for i, n := range names {
		if string(text) == n {
			*dst = T(i)
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", text, strings.Join(names, ", "))
}

// Name is v's word in names, or a number for a value no name has (a value
// made by a conversion, which a Validate refuses).
func Name[T ~uint8](v T, names []string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return "choice(" + strconv.Itoa(int(v)) + ")"
}

// Check refuses a value no name has, naming the setting and the allowed
// words.
func Check[T ~uint8](setting string, v T, names []string) error {
	if int(v) < len(names) {
		return nil
	}
	return fmt.Errorf("%s %d is not one of %s", setting, v, strings.Join(names, ", "))
}
