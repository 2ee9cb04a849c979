package zookeeper

import (
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/junctionhq/junction/model"
)

// curatorInstance is Apache Curator's ServiceInstance as JSON, with the
// payload Spring Cloud Zookeeper writes and reads (ZookeeperInstance).
type curatorInstance struct {
	Name                string          `json:"name"`
	ID                  string          `json:"id"`
	Address             string          `json:"address"`
	Port                *int            `json:"port"`
	SSLPort             *int            `json:"sslPort"`
	Payload             *curatorPayload `json:"payload"`
	RegistrationTimeUTC int64           `json:"registrationTimeUTC"`
	ServiceType         string          `json:"serviceType"`
	URISpec             json.RawMessage `json:"uriSpec"`
}

type curatorPayload struct {
	Class    string            `json:"@class"`
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Metadata map[string]string `json:"metadata"`
}

const (
	springInstanceClass = "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance"
	metaPrefix          = "junction."
)

func encodeInstance(service string, i model.Instance) ([]byte, error) {
	meta := maps.Clone(i.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[metaPrefix+"cluster"] = i.Cluster
	meta[metaPrefix+"weight"] = strconv.FormatFloat(i.Weight, 'g', -1, 64)
	meta[metaPrefix+"enabled"] = strconv.FormatBool(i.Enabled)
	meta[metaPrefix+"healthy"] = strconv.FormatBool(i.Healthy)
	if i.Session != "" {
		meta[metaPrefix+"session"] = i.Session
	}
	port := i.Port
	typ := "PERMANENT"
	if i.Ephemeral {
		typ = "DYNAMIC"
	}
	return json.Marshal(curatorInstance{Name: service, ID: i.ID, Address: i.IP, Port: &port,
		Payload:             &curatorPayload{Class: springInstanceClass, ID: service, Name: service, Metadata: meta},
		RegistrationTimeUTC: time.Now().UnixMilli(), ServiceType: typ})
}

// decodeInstance reads a Curator record written by Junction, Curator or
// Spring Cloud; what a record lacks gets Junction's defaults.
func decodeInstance(id string, data []byte, st *zk.Stat) model.Instance {
	i := model.Instance{ID: id, Cluster: model.DefaultCluster, Weight: 1, Healthy: true, Enabled: true,
		Ephemeral: st.EphemeralOwner != 0, Revision: st.Mzxid}
	var c curatorInstance
	if json.Unmarshal(data, &c) != nil {
		return i
	}
	i.IP = c.Address
	if c.Port != nil {
		i.Port = *c.Port
	} else if c.SSLPort != nil {
		i.Port = *c.SSLPort
	}
	if c.Payload == nil {
		return i
	}
	for k, v := range c.Payload.Metadata {
		name, ours := strings.CutPrefix(k, metaPrefix)
		if !ours {
			if i.Metadata == nil {
				i.Metadata = map[string]string{}
			}
			i.Metadata[k] = v
			continue
		}
		switch name {
		case "cluster":
			i.Cluster = v
		case "weight":
			if w, err := strconv.ParseFloat(v, 64); err == nil {
				i.Weight = w
			}
		case "enabled":
			i.Enabled = parseBool(v, true)
		case "healthy":
			i.Healthy = parseBool(v, true)
		case "session":
			i.Session = v
		}
	}
	return i
}
