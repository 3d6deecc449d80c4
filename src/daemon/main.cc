// airlockd: the Airlock daemon. Serves the REST API of api/openapi.yaml, or manages API keys
// (`airlockd keys ...`) on the same database. This file only parses the command line.
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "common/fs.h"
#include "daemon/daemon.h"
#include "daemon/key_commands.h"
#include "daemon/version.h"

int main(int argc, char** argv) {
  using namespace airlock::daemon;
  airlock::ensure_std_fds();

  CLI::App app{"airlockd: the Airlock daemon (long-lived sandboxes behind a REST API)"};
  app.set_version_flag("--version", "airlockd " + std::string(kDaemonVersion));
  app.fallthrough();  // --data-dir may also follow the keys subcommands

  DaemonOptions daemon;
  std::string unix_path;
  std::string log_level = "info";
  app.add_option("--data-dir", daemon.data_dir, "state directory (database, admin-key, socket)")
      ->capture_default_str();
  app.add_option("--listen", daemon.listen, "TCP address HOST:PORT (port 0: any free port; none: no TCP)")
      ->capture_default_str();
  app.add_option("--unix", unix_path, "unix socket path (default DATA_DIR/airlockd.sock)");
  bool no_unix = false;
  app.add_flag("--no-unix", no_unix, "do not listen on a unix socket");
  auto* tls_cert = app.add_option("--tls-cert", daemon.tls_cert,
                                  "PEM certificate (chain) for the TCP listener, which then speaks HTTPS only");
  auto* tls_key = app.add_option("--tls-key", daemon.tls_key, "PEM private key (unencrypted) of --tls-cert");
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  app.add_option("--threads", daemon.threads, "HTTP worker threads")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--log-level", log_level, "error, warn, info or debug")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}))
      ->capture_default_str();
  // [obs] Default tenant quota: a number, or "unlimited".
  std::string default_max_sandboxes = "100", default_max_memory_mb = "65536";
  auto limit_check = CLI::Validator(
      [](std::string& v) -> std::string {
        bool digits = !v.empty() && v.size() <= 12 && v.find_first_not_of("0123456789") == std::string::npos;
        return digits || v == "unlimited" ? "" : "must be a whole number or unlimited";
      },
      "N|unlimited");
  app.add_option("--default-max-sandboxes", default_max_sandboxes,
                 "sandboxes (starting + running) per tenant without its own quota")
      ->check(limit_check)
      ->capture_default_str();
  app.add_option("--default-max-memory-mb", default_max_memory_mb,
                 "MiB of sandbox memory per tenant without its own quota")
      ->check(limit_check)
      ->capture_default_str();

  app.add_option("--proxy-domain", daemon.proxy_domain,
                 "exposed ports are also served as {port}-{sandbox_id}.DOMAIN (a wildcard DNS name for this host)");
  // Sandbox networks (issue 4): only set up when a sandbox asks for an interface.
  std::string net_pool4 = "10.213.0.0/16", net_pool6 = "fd00:a1c0:7e57::/64", net_uplink;
  std::vector<std::string> net_dns;
  app.add_option("--net-bridge", daemon.network.config.bridge, "host bridge of sandbox interfaces")
      ->check([](const std::string& v) { return airlock::net::valid_interface_name(v) ? "" : "not an interface name"; })
      ->capture_default_str();
  app.add_option("--net-pool4", net_pool4, "IPv4 network of sandbox addresses (the gateway is its first address)")
      ->capture_default_str();
  app.add_option("--net-pool6", net_pool6, "IPv6 network of sandbox addresses")->capture_default_str();
  app.add_option("--net-uplink", net_uplink, "NAT sandbox egress only out of this interface (default: any route)");
  app.add_option("--net-dns-upstream", net_dns,
                 "resolver(s) for allowed names, ADDR or ADDR:PORT (default: first nameserver of /etc/resolv.conf)");
  app.add_flag("--net-ipv6-forwarding", daemon.network.ipv6_forwarding,
               "turn on IPv6 forwarding for sandbox egress (also makes every interface ignore router adverts)");

  auto* keys = app.add_subcommand("keys", "manage API keys in DATA_DIR's database directly");
  keys->require_subcommand(1);
  keys->fallthrough();

  KeyCreateOptions create_options;
  auto* create = keys->add_subcommand("create", "create a key and print its secret (shown once)");
  create->add_option("--tenant", create_options.tenant, "tenant the key belongs to")->capture_default_str();
  create->add_option("--name", create_options.name, "a label for the key")->capture_default_str();
  create->add_flag("--admin", create_options.admin, "the key may manage keys and quotas of every tenant");
  create->add_flag("--json", create_options.json, "print the whole key (secret included) as JSON");

  std::optional<std::string> list_tenant;
  bool list_all = false, list_json = false;
  auto* list = keys->add_subcommand("list", "list keys (never secrets)");
  list->add_option("--tenant", list_tenant, "only this tenant's keys");
  list->add_flag("--all", list_all, "include revoked keys");
  list->add_flag("--json", list_json, "print JSON");

  std::string revoke_id;
  bool revoke_json = false;
  auto* revoke = keys->add_subcommand("revoke", "revoke a key (idempotent)");
  revoke->add_option("key_id", revoke_id, "the key's id (key-...)")->required();
  revoke->add_flag("--json", revoke_json, "print the revoked key as JSON");

  CLI11_PARSE(app, argc, argv);

  if (*create) return keys_create(daemon.data_dir, create_options);
  if (*list) return keys_list(daemon.data_dir, list_tenant, list_all, list_json);
  if (*revoke) return keys_revoke(daemon.data_dir, revoke_id, revoke_json);

  if (!unix_path.empty()) daemon.unix_path = unix_path;
  daemon.unix_enabled = !no_unix;
  parse_log_level(log_level, &daemon.log_level);
  auto limit = [](const std::string& v) { return v == "unlimited" ? std::nullopt : std::optional<int64_t>(std::stoll(v)); };
  daemon.default_max_sandboxes = limit(default_max_sandboxes);  // [obs]
  daemon.default_max_memory_mb = limit(default_max_memory_mb);  // [obs]
  auto pool = [](const std::string& text, int family, int min_prefix, int max_prefix, airlock::net::IpAddress* address,
                 int* prefix) {
    auto d = airlock::net::parse_destination(text);
    if (!d.ok() || d->kind != airlock::net::Destination::Kind::kCidr || d->port || d->address.family != family ||
        d->prefix_len < min_prefix || d->prefix_len > max_prefix) {
      std::fprintf(stderr, "airlockd: %s: not an %s network with a prefix of /%d to /%d\n", text.c_str(),
                   family == AF_INET ? "IPv4" : "IPv6", min_prefix, max_prefix);
      return false;
    }
    *address = d->address;
    *prefix = d->prefix_len;
    return true;
  };
  if (!pool(net_pool4, AF_INET, 8, 24, &daemon.network.config.pool4, &daemon.network.config.pool4_prefix) ||
      !pool(net_pool6, AF_INET6, 48, 112, &daemon.network.config.pool6, &daemon.network.config.pool6_prefix)) {
    return 2;
  }
  if (!net_uplink.empty()) daemon.network.config.uplink = net_uplink;
  for (const auto& text : net_dns) {
    auto d = airlock::net::parse_destination(text);
    if (!d.ok() || d->kind != airlock::net::Destination::Kind::kCidr ||
        d->prefix_len != static_cast<int>(d->address.size()) * 8) {
      std::fprintf(stderr, "airlockd: --net-dns-upstream %s: expected ADDR or ADDR:PORT\n", text.c_str());
      return 2;
    }
    daemon.network.dns_upstream.emplace_back(d->address, d->port.value_or(53));
  }
  return run_daemon(daemon);
}
