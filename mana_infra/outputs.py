"""The stack outputs' names, once: the program exports them, and check, cutover, failback, the plan's
view and the lab read them by these names. (What each holds: the README's "Stack outputs".) Plain
Python, so that the watch box's check imports it without pulumi."""

from __future__ import annotations

from enum import StrEnum


class Output(StrEnum):
    """Every output a stack of this project may have (prod's, and the rehearsal's)."""

    MODE = "mode"
    MODE_SINCE = "modeSince"
    MODE_CHANGED_BY = "modeChangedBy"
    FAILOVER_VIA = "failoverVia"
    ORIGIN_NAME = "originName"
    ORIGIN_IPV4 = "originIpv4"
    ORIGIN_IPV6 = "originIpv6"
    SERVER_ID = "serverId"
    HEALTH_URL = "healthUrl"
    CHECK_ALLOWED_CIDRS = "checkAllowedCidrs"
    TUNNEL_TARGET = "tunnelTarget"
    TUNNEL_PROBE = "tunnelProbe"
    ADOPT_RECORDS_LEFT = "adoptRecordsLeft"
    CONFIG_WARNINGS = "configWarnings"
    WIREGUARD_SERVER_PUBLIC_KEY = "wireguardServerPublicKey"
    MACMINI_WIREGUARD_CONFIG = "macminiWireguardConfig"
    MACMINI_LAUNCHD_PLIST = "macminiLaunchdPlist"
    WATCH_SYSTEMD_UNIT = "watchSystemdUnit"
    WATCH_LAUNCHD_AGENT = "watchLaunchdAgent"
    WATCHDOG_SYSTEMD_UNIT = "watchdogSystemdUnit"
    WATCH_ALERT_RULES = "watchAlertRules"
    WATCH_DASHBOARD = "watchDashboard"
    MACMINI_ADDRESS = "macminiAddress"
    CLOUDFLARE_ZONE_ID = "cloudflareZoneId"
    EMERGENCY_CUTOVER = "emergencyCutover"
    EMERGENCY_CUTOVER_DIRECT = "emergencyCutoverDirect"
    HOME_NAME = "homeName"
    HOME_IPV4 = "homeIpv4"
    HOME_IPV6 = "homeIpv6"
    MACMINI_CADDYFILE = "macminiCaddyfile"
    MACMINI_CADDY_LAUNCHD_PLIST = "macminiCaddyLaunchdPlist"
    MACMINI_SYNC_SCRIPT = "macminiSyncScript"
    MACMINI_SYNC_LAUNCHD_PLIST = "macminiSyncLaunchdPlist"
    SECONDARY_DNS_NAMESERVERS = "secondaryDnsNameservers"
    SECONDARY_DNS_POSTPONED = "secondaryDnsPostponed"
    SECONDARY_DNS_UNMIRRORED = "secondaryDnsUnmirrored"
    REGISTRAR_STEP = "registrarStep"
    CADDYFILE_SHA256 = "caddyfileSha256"
    ZONE_SSL_MODE = "zoneSslMode"
    ORIGIN_CERTIFICATE_EXPIRES_ON = "originCertificateExpiresOn"
    ORIGIN_CERTIFICATE_SHA256 = "originCertificateSha256"
    PUBLIC_CERTIFICATE_EXPIRES_ON = "publicCertificateExpiresOn"
    PUBLIC_CERTIFICATE_ISSUED_ON = "publicCertificateIssuedOn"
    CLOUDFLARE_REACHABLE = "cloudflareReachable"
    CUTOVER_BUDGET = "cutoverBudget"
    ZONE = "zone"
    SSH_USER = "sshUser"
    HOSTS = "hosts"
    PROD_STACK = "prodStack"
    SITE_FILE = "siteFile"
    REHEARSAL_URLS = "rehearsalUrls"
    CHECK_COMMAND = "checkCommand"


# What the rehearsal reads from its prod stack (a StackReference) and exports again under the same names:
# the prod stack's export must keep exporting every one.
PROD_OUTPUTS_READ = (
    Output.ORIGIN_NAME,
    Output.ORIGIN_IPV4,
    Output.HEALTH_URL,
    Output.MACMINI_ADDRESS,
    Output.SERVER_ID,
)
