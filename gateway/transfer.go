package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// What an import does with one item.
const (
	actionCreate    = "create"
	actionOverwrite = "overwrite"
	actionSkip      = "skip"
	actionUnchanged = "unchanged"
	actionConflict  = "conflict"
)

// transferScope checks the namespace of an export or an import: any but
// the gateways' own.
func transferScope(ns, group string) (string, error) {
	ns, err := listScope(ns, group)
	if err == nil && ns == SystemNamespace {
		err = model.Invalid("namespace", "%s is the gateways' own: it is neither exported nor imported", SystemNamespace)
	}
	return ns, err
}

func (c *configService) ExportConfigs(ctx context.Context, req *pb.ExportConfigsRequest) (*pb.ExportConfigsResponse, error) {
	ns, err := transferScope(req.Namespace, req.Group)
	if err != nil {
		return nil, err
	}
	list, info, err := c.s.b.ListConfigs(ctx, ns, req.Group, backends.ReadOptions{})
	if err != nil {
		return nil, err
	}
	keep := visible(ctx)
	var (
		cfgs  []model.Config
		total int
	)
	for _, s := range list {
		if !keep(acl.Resource{Kind: acl.KindConfig, Namespace: s.Key.Namespace, Group: s.Key.Group, Name: s.Key.DataID}) {
			continue
		}
		if len(cfgs) == maxArchiveItems {
			return nil, model.Invalid("group", "the namespace holds more than %d items: export it a group at a time", maxArchiveItems)
		}
		cfg, _, err := c.s.b.GetConfig(ctx, s.Key, backends.ReadOptions{})
		if errors.Is(err, model.ErrNotFound) {
			continue // deleted since the list
		}
		if err != nil {
			return nil, err
		}
		if total += len(cfg.Content); total > maxArchiveTotal {
			return nil, model.TooLarge("export", total, maxArchiveTotal)
		}
		cfgs = append(cfgs, cfg)
	}
	slices.SortFunc(cfgs, func(a, b model.Config) int {
		return cmp.Or(strings.Compare(a.Key.Group, b.Key.Group), strings.Compare(a.Key.DataID, b.Key.DataID))
	})
	archive, err := writeArchive(ns, req.Group, info.Revision, cfgs, time.Now())
	if err != nil {
		return nil, fmt.Errorf("write the export: %w", err)
	}
	return &pb.ExportConfigsResponse{Archive: archive, Count: int32(len(cfgs)), Revision: info.Revision}, nil
}

// planned is one item of an import and what it does.
type planned struct {
	item archiveItem
	key  model.ConfigKey
	cond model.Precondition
	resp *pb.ImportItem
}

func (c *configService) ImportConfigs(ctx context.Context, req *pb.ImportConfigsRequest) (*pb.ImportConfigsResponse, error) {
	ns, err := transferScope(req.Namespace, "")
	if err != nil {
		return nil, err
	}
	policy := req.Policy
	if policy == pb.ImportPolicy_IMPORT_POLICY_UNSPECIFIED {
		policy = pb.ImportPolicy_ABORT
	}
	if _, ok := pb.ImportPolicy_name[int32(policy)]; !ok {
		return nil, model.Invalid("policy", "%d is not abort, skip or overwrite", policy)
	}
	format, items, err := readArchive(req.Archive, c.s.cfg.MaxContentSize)
	if err != nil {
		return nil, err
	}
	plan, err := c.planImport(ctx, ns, items, policy, req.NoValidate)
	if err != nil {
		return nil, err
	}
	resp := &pb.ImportConfigsResponse{Format: format}
	conflicts := 0
	for _, p := range plan {
		resp.Items = append(resp.Items, p.resp)
		if p.resp.Action == actionConflict {
			conflicts++
		}
	}
	if req.DryRun {
		return resp, nil
	}
	if conflicts > 0 {
		first := plan[slices.IndexFunc(plan, func(p planned) bool { return p.resp.Action == actionConflict })]
		return nil, &model.FieldError{Field: "policy", Kind: model.ErrConflict, Reason: fmt.Sprintf(
			"%d items exist with other content (%s first), and the policy is abort: nothing was written; "+
				"import with --policy skip or overwrite, or see --dry-run", conflicts, first.key)}
	}
	if ctx, err = c.s.change(ctx, cmp.Or(req.Message, "import")); err != nil {
		return nil, err
	}
	written := 0
	for _, p := range plan {
		if p.resp.Action != actionCreate && p.resp.Action != actionOverwrite {
			continue
		}
		cfg, err := c.s.b.PutConfig(ctx, model.Config{Key: p.key, Content: p.item.Content, ContentType: p.item.ContentType}, p.cond)
		if err != nil {
			return nil, fmt.Errorf("import %s after %d of the writes it planned (it changed since the plan?): %w", p.key, written, err)
		}
		p.resp.Revision = cfg.Revision
		written++
	}
	resp.Applied = true
	return resp, nil
}

// planImport checks every item (name, size, type, format and the caller's
// right to write it) and decides what to do with it, before anything is
// written.
func (c *configService) planImport(ctx context.Context, ns string, items []archiveItem, policy pb.ImportPolicy, noValidate bool) ([]planned, error) {
	plan := make([]planned, 0, len(items))
	for _, it := range items {
		key := model.ConfigKey{Namespace: ns, Group: it.Group, DataID: it.DataID}
		if err := model.ValidateContent(it.Content, c.s.cfg.MaxContentSize); err != nil {
			return nil, fmt.Errorf("entry %s/%s: %w", it.Group, it.DataID, err)
		}
		if !noValidate {
			if err := validateFormat(it.ContentType, it.Content); err != nil {
				return nil, fmt.Errorf("entry %s/%s (%s): %w", it.Group, it.DataID, it.ContentType, err)
			}
		}
		if err := mayWrite(ctx, acl.Resource{Kind: acl.KindConfig, Namespace: ns, Group: it.Group, Name: it.DataID}); err != nil {
			return nil, err
		}
		p := planned{item: it, key: key, cond: model.IfRevision(0), resp: &pb.ImportItem{Group: it.Group, DataId: it.DataID,
			ContentType: it.ContentType, Md5: model.ContentMD5(it.Content), Size: int64(len(it.Content)), Action: actionCreate}}
		cur, _, err := c.s.b.GetConfig(ctx, key, backends.ReadOptions{})
		switch {
		case errors.Is(err, model.ErrNotFound):
		case err != nil:
			return nil, err
		case bytes.Equal(cur.Content, it.Content) && cur.ContentType == it.ContentType:
			p.resp.Action = actionUnchanged
		case policy == pb.ImportPolicy_SKIP:
			p.resp.Action = actionSkip
		case policy == pb.ImportPolicy_OVERWRITE:
			p.resp.Action, p.cond = actionOverwrite, model.IfRevision(cur.Revision)
		default:
			p.resp.Action = actionConflict
		}
		plan = append(plan, p)
	}
	return plan, nil
}
