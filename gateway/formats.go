package gateway

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"github.com/magiconair/properties"
	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"

	"github.com/junctionhq/junction/model"
)

// validateFormat parses content as its content type says, each format
// with a parser made for it, and refuses content that does not parse with
// an INVALID_ARGUMENT that names the line and column (field "content").
// Text, and content types without a parser, pass as they are.
func validateFormat(contentType string, content []byte) error {
	var line, col int
	var err error
	switch contentType {
	case model.ContentJSON:
		line, col, err = checkJSON(content)
	case model.ContentYAML:
		line, col, err = checkYAML(content)
	case model.ContentTOML:
		line, col, err = checkTOML(content)
	case model.ContentXML:
		line, col, err = checkXML(content)
	case model.ContentProperties:
		line, col, err = checkProperties(content)
	default:
		return nil
	}
	if err == nil {
		return nil
	}
	where := ""
	switch {
	case line > 0 && col > 0:
		where = fmt.Sprintf("line %d, column %d: ", line, col)
	case line > 0:
		where = fmt.Sprintf("line %d: ", line)
	}
	return model.Invalid("content", "not valid %s: %s%v (publish it with validation off to store it anyway)", contentType, where, err)
}

// position turns a byte offset into a line and a column, both from 1.
func position(content []byte, offset int) (line, col int) {
	offset = min(max(offset, 0), len(content))
	before := content[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = offset - bytes.LastIndexByte(before, '\n')
	return line, col
}

func checkJSON(content []byte) (int, int, error) {
	dec := json.NewDecoder(bytes.NewReader(content))
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			off := int(dec.InputOffset())
			line, col := position(content, off)
			return line, col, errors.New("more than one JSON value")
		}
		return 0, 0, nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(content, int(se.Offset)-1)
		return line, col, errors.New(se.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		line, col := position(content, len(content))
		return line, col, errors.New("unexpected end of the content")
	}
	return 0, 0, err
}

// yamlLine finds the line yaml's messages name.
var yamlLine = regexp.MustCompile(`line (\d+)`)

func checkYAML(content []byte) (int, int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return 0, 0, nil
		}
		if err != nil {
			line := 0
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				line, _ = strconv.Atoi(m[1])
			}
			return line, 0, err
		}
	}
}

func checkTOML(content []byte) (int, int, error) {
	var v map[string]any
	err := toml.Unmarshal(content, &v)
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		return line, col, errors.New(de.Error())
	}
	return 0, 0, err
}

func checkXML(content []byte) (int, int, error) {
	dec := xml.NewDecoder(bytes.NewReader(content))
	root := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !root {
				return 0, 0, errors.New("no root element")
			}
			return 0, 0, nil
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return se.Line, 0, errors.New(se.Msg)
			}
			line, col := dec.InputPos()
			return line, col, err
		}
		if _, ok := tok.(xml.StartElement); ok {
			root = true
		}
	}
}

// propertiesLine finds the line the properties parser's messages name.
var propertiesLine = regexp.MustCompile(`(?i)line (\d+)`)

func checkProperties(content []byte) (int, int, error) {
	l := &properties.Loader{Encoding: properties.UTF8, DisableExpansion: true}
	_, err := l.LoadBytes(content)
	if err == nil {
		return 0, 0, nil
	}
	line := 0
	if m := propertiesLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	return line, 0, err
}
