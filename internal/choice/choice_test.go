package choice

import (
	"strings"
	"testing"
)

type colour uint8

var colourNames = []string{"red", "green"}

func TestParseNameCheck(t *testing.T) {
	var c colour
	if err := Parse(&c, []byte("green"), colourNames); err != nil || c != 1 {
		t.Fatalf("Parse(green) = %d, %v", c, err)
	}
	err := Parse(&c, []byte("blue"), colourNames)
	if err == nil || !strings.Contains(err.Error(), `"blue" is not one of red, green`) {
		t.Errorf("Parse(blue) = %v", err)
	}
	if c != 1 {
		t.Errorf("a refused word changed the value to %d", c)
	}
	if Name(colour(0), colourNames) != "red" || Name(colour(7), colourNames) != "choice(7)" {
		t.Errorf("Name: %q %q", Name(colour(0), colourNames), Name(colour(7), colourNames))
	}
	if Check("--colour", colour(1), colourNames) != nil || Check("--colour", colour(2), colourNames) == nil {
		t.Error("Check takes 2 or refuses 1")
	}
}
