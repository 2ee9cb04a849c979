package gateway

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/junctionhq/junction/model"
)

// An export is one zip that both Junction and a Nacos console import: each
// item's content at GROUP/DATA_ID, Nacos 2's metadata in .metadata.yml
// (data id, group, type), and Junction's own in junction.json (types,
// md5s, revisions and versions, which an import checks the contents
// against). An import also reads a Nacos console's zips: a Nacos 2 export
// (.metadata.yml) and a Nacos 1 one (.meta.yml, which names no types: an
// item's type comes from its data id's extension).
const (
	manifestName     = "junction.json"
	nacosMetaName    = ".metadata.yml"
	nacosV1MetaName  = ".meta.yml"
	manifestFormat   = "junction-configs/1"
	maxArchiveItems  = 10000
	maxArchiveTotal  = 64 << 20 // bytes of content, in an export or an import
	maxArchiveMeta   = 4 << 20  // bytes of each metadata file
	formatJunction   = "junction"
	formatNacos      = "nacos"
	formatNacosV1    = "nacos-v1"
	archiveFieldName = "archive"
)

// manifest is junction.json.
type manifest struct {
	Format    string         `json:"format"`
	Namespace string         `json:"namespace"`
	Group     string         `json:"group,omitempty"`
	Exported  time.Time      `json:"exported"`
	Revision  int64          `json:"revision"`
	Items     []manifestItem `json:"items"`
}

type manifestItem struct {
	Group       string    `json:"group"`
	DataID      string    `json:"dataId"`
	ContentType string    `json:"contentType"`
	MD5         string    `json:"md5"`
	Size        int       `json:"size"`
	Revision    int64     `json:"revision"`
	Version     int64     `json:"version"`
	Updated     time.Time `json:"updated"`
}

// nacosMeta is a Nacos 2 export's .metadata.yml.
type nacosMeta struct {
	Metadata []nacosMetaItem `yaml:"metadata"`
}

type nacosMetaItem struct {
	DataID  string `yaml:"dataId"`
	Group   string `yaml:"group"`
	Type    string `yaml:"type"`
	AppName string `yaml:"appName,omitempty"`
	Desc    string `yaml:"desc,omitempty"`
}

// archiveItem is one item an import read.
type archiveItem struct {
	Group, DataID string
	Content       []byte
	ContentType   string
}

// writeArchive writes the export of cfgs, the items of namespace ns (of
// group, when set), listed at revision rev and each read after.
func writeArchive(ns, group string, rev int64, cfgs []model.Config, now time.Time) ([]byte, error) {
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	m := manifest{Format: manifestFormat, Namespace: ns, Group: group, Exported: now.UTC(), Revision: rev, Items: []manifestItem{}}
	var meta nacosMeta
	for _, c := range cfgs {
		w, err := z.CreateHeader(&zip.FileHeader{Name: c.Key.Group + "/" + c.Key.DataID, Method: zip.Deflate, Modified: c.Updated})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(c.Content); err != nil {
			return nil, err
		}
		m.Items = append(m.Items, manifestItem{Group: c.Key.Group, DataID: c.Key.DataID, ContentType: c.ContentType, MD5: c.MD5,
			Size: len(c.Content), Revision: c.Revision, Version: c.Version, Updated: c.Updated})
		meta.Metadata = append(meta.Metadata, nacosMetaItem{DataID: c.Key.DataID, Group: c.Key.Group, Type: c.ContentType})
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	yb, err := yaml.Marshal(meta)
	if err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{manifestName: mb, nacosMetaName: yb} {
		w, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: now})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(b); err != nil {
			return nil, err
		}
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bad is the error of an archive that cannot be imported.
func bad(format string, args ...any) error { return model.Invalid(archiveFieldName, format, args...) }

// readArchive reads an import, checking every entry: names (no paths but
// GROUP/DATA_ID, no traversal), sizes, counts, and, for Junction's own
// format, each content against the md5 the manifest gives it.
func readArchive(b []byte, maxContent int) (string, []archiveItem, error) {
	z, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return "", nil, bad("is not a zip: %v", err)
	}
	if len(z.File) > maxArchiveItems+3 {
		return "", nil, model.TooLarge(archiveFieldName, len(z.File), maxArchiveItems)
	}
	var (
		items = map[string]*archiveItem{}
		metas = map[string][]byte{}
		order []string
		total int
	)
	for _, f := range z.File {
		name := f.Name
		if strings.HasSuffix(name, "/") && f.FileInfo().IsDir() {
			continue
		}
		read := func(limit int) ([]byte, error) {
			rc, err := f.Open()
			if err != nil {
				return nil, bad("entry %q: %v", name, err)
			}
			defer rc.Close()
			data, err := io.ReadAll(io.LimitReader(rc, int64(limit)+1))
			if err != nil {
				return nil, bad("entry %q: %v", name, err)
			}
			if len(data) > limit {
				return nil, model.TooLarge(archiveFieldName, len(data), limit)
			}
			return data, nil
		}
		switch name {
		case manifestName, nacosMetaName, nacosV1MetaName:
			if metas[name] != nil {
				return "", nil, bad("entry %q appears twice", name)
			}
			data, err := read(maxArchiveMeta)
			if err != nil {
				return "", nil, err
			}
			if total += len(data); total > maxArchiveTotal {
				return "", nil, model.TooLarge(archiveFieldName, total, maxArchiveTotal)
			}
			metas[name] = data
			continue
		}
		group, dataID, err := entryKey(name)
		if err != nil {
			return "", nil, err
		}
		if items[name] != nil {
			return "", nil, bad("entry %q appears twice", name)
		}
		data, err := read(maxContent)
		if err != nil {
			return "", nil, fmt.Errorf("entry %q: %w", name, err)
		}
		if total += len(data); total > maxArchiveTotal {
			return "", nil, model.TooLarge(archiveFieldName, total, maxArchiveTotal)
		}
		items[name] = &archiveItem{Group: group, DataID: dataID, Content: data}
		order = append(order, name)
	}
	format, err := typeItems(items, metas)
	if err != nil {
		return "", nil, err
	}
	slices.Sort(order)
	out := make([]archiveItem, 0, len(order))
	for _, name := range order {
		out = append(out, *items[name])
	}
	return format, out, nil
}

// entryKey reads a content entry's name, which must be GROUP/DATA_ID, each
// a valid name: no other path, no traversal, no absolute or Windows path.
func entryKey(name string) (group, dataID string, err error) {
	parts := strings.Split(name, "/")
	if len(parts) != 2 || strings.Contains(name, `\`) || path.Clean(name) != name {
		return "", "", bad("entry %q is not GROUP/DATA_ID", name)
	}
	if err := model.ValidateName("group", parts[0], model.MaxNameLen); err != nil {
		return "", "", bad("entry %q: %v", name, err)
	}
	if err := model.ValidateName("dataId", parts[1], model.MaxDataIDLen); err != nil {
		return "", "", bad("entry %q: %v", name, err)
	}
	return parts[0], parts[1], nil
}

// typeItems gives each item its type from the archive's metadata and
// returns the archive's format.
func typeItems(items map[string]*archiveItem, metas map[string][]byte) (string, error) {
	if b := metas[manifestName]; b != nil {
		var m manifest
		if err := json.Unmarshal(b, &m); err != nil || m.Format != manifestFormat {
			return "", bad("%s is not a Junction export manifest (format %q): %v", manifestName, m.Format, err)
		}
		listed := map[string]bool{}
		for _, mi := range m.Items {
			name := mi.Group + "/" + mi.DataID
			it := items[name]
			switch {
			case it == nil:
				return "", bad("%s lists %s, which the archive does not hold", manifestName, name)
			case model.ContentMD5(it.Content) != mi.MD5:
				return "", bad("entry %q does not have the md5 %s lists for it", name, manifestName)
			case model.ValidateContentType(mi.ContentType) != nil:
				return "", bad("%s gives %s the unknown type %q", manifestName, name, mi.ContentType)
			}
			it.ContentType, listed[name] = mi.ContentType, true
		}
		for name := range items {
			if !listed[name] {
				return "", bad("entry %q is not in %s", name, manifestName)
			}
		}
		return formatJunction, nil
	}
	if b := metas[nacosMetaName]; b != nil {
		var m nacosMeta
		if err := yaml.Unmarshal(b, &m); err != nil {
			return "", bad("%s: %v", nacosMetaName, err)
		}
		for _, mi := range m.Metadata {
			if it := items[mi.Group+"/"+mi.DataID]; it != nil {
				it.ContentType = nacosType(mi.Type, mi.DataID)
			}
		}
		for _, it := range items {
			if it.ContentType == "" {
				it.ContentType = nacosType("", it.DataID)
			}
		}
		return formatNacos, nil
	}
	for _, it := range items {
		it.ContentType = nacosType("", it.DataID)
	}
	return formatNacosV1, nil
}

// nacosType maps a Nacos type (text, json, xml, yaml, html, properties) to
// Junction's, or, when none is given, the data id's extension.
func nacosType(t, dataID string) string {
	t = strings.ToLower(t)
	if t == "" {
		t = strings.TrimPrefix(path.Ext(dataID), ".")
	}
	switch t {
	case "yml":
		t = model.ContentYAML
	case "html", "txt":
		t = model.ContentText
	}
	if model.ValidateContentType(t) != nil || t == "" {
		return model.ContentText
	}
	return t
}
