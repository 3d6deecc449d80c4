// The "host" template: the machine's /usr (read-only, shared) under a small synthetic root
// (/etc with passwd/group/hosts/resolv.conf/nsswitch.conf, merged-/usr symlinks, empty
// /root, /tmp, /home). The synthetic root is built once per host state into the data dir and
// then shared by every sandbox as an overlay lower layer; no host /etc file is copied.
#pragma once

#include <string>

#include "common/result.h"

namespace airlock {

struct HostTemplate {
  std::string skeleton_dir;  // lower layer for "/"
  std::string usr_dir;       // lower layer for "/usr" (the host's /usr)
};

// Returns the template, building its skeleton under data_dir/templates/ if needed.
// Concurrent callers race safely: each builds in a private temp dir and renames it into place.
Result<HostTemplate> ensure_host_template(const std::string& data_dir);

}  // namespace airlock
