package nacos

import "github.com/junctionhq/junction/model"

// AnnounceForTest makes the driver take data as the server's notice of
// key's content, as the SDK's listener would.
func AnnounceForTest(d *Driver, key model.ConfigKey, data string) { d.cview(key).changed(data) }
