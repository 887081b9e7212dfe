#!/usr/bin/env bash
# A real Request Tracker 5 (Debian's packages, SQLite) on 127.0.0.1 for the scenario suite.
#
#   tests/rt5/rt5.sh up [PORT]     install if missing, fresh database, seed, start; prints RT5_* lines
#   tests/rt5/rt5.sh down [PORT]   stop the server started by `up`
#
# Seeded: an API user (basic auth), user custom fields Phone, ExternalId, Twitter, Facebook and
# Instagram (free text) and Label (select: Gold, Silver, Platinum), and the ticket custom field
# "Order number", all applied globally. Needs root (apt-get, /etc/request-tracker5). RT5 REST2 notes: docs/mappings.md (Request Tracker 5).
set -euo pipefail

ACTION=${1:-up}
PORT=${2:-8181}
API_USER=crm-gateway
API_PASS=${RT5_API_PASS:-crm-gateway-test-pass}
ETC=/etc/request-tracker5
RT_SERVER=/usr/share/request-tracker5/libexec/rt-server
STATE=/var/lib/request-tracker5/crm-gateway
PIDFILE=$STATE/rt-$PORT.pid
LOG=$STATE/rt-$PORT.log
BASE=http://127.0.0.1:$PORT

say() { echo "[rt5] $*" >&2; }
[ "$(id -u)" = 0 ] || { say "must run as root"; exit 1; }

stop() {
  if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill -TERM "$(cat "$PIDFILE")"
    for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$(cat "$PIDFILE")" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}
if [ "$ACTION" = down ]; then stop; say "stopped"; exit 0; fi

# 1. Packages, installed without questions; dbconfig initialises the SQLite database.
installed() { dpkg-query -W -f='${Status}' request-tracker5 rt5-standalone rt5-db-sqlite sqlite3 curl 2>/dev/null | grep -c "ok installed" | grep -qx 5; }
if ! installed; then
  say "installing request-tracker5 (about a minute)"
  # After a purged install, dbconfig's shared questions are gone and the preseed is refused:
  # register them again (on a machine that never had RT this changes nothing).
  printf 'REGISTER dbconfig-common/%s request-tracker5/%s\n' dbconfig-install dbconfig-install \
    database-type database-type | debconf-communicate request-tracker5 >/dev/null 2>&1 || true
  debconf-set-selections <<EOF
rt5-db-sqlite rt5-db-sqlite/available boolean true
request-tracker5 request-tracker5/dbconfig-install boolean true
request-tracker5 request-tracker5/database-type select sqlite3
request-tracker5 request-tracker5/initial-root-password password crm-gateway-root
request-tracker5 request-tracker5/install-cronjobs boolean false
request-tracker5 request-tracker5/handle-siteconfig-permissions boolean true
request-tracker5 request-tracker5/rtname string rt.test
request-tracker5 request-tracker5/webbaseurl string $BASE
EOF
  export DEBIAN_FRONTEND=noninteractive
  apt-get -qq -o DPkg::Lock::Timeout=600 update
  apt-get -qq -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
    request-tracker5 rt5-standalone rt5-db-sqlite sqlite3 curl >/dev/null
fi

# 2. Config: our instance on loopback, no mail, cheap password hashing (bcrypt 12 costs
#    ~250 ms per authenticated request), readable by www-data, which the server runs as.
mkdir -p "$STATE"
cat > $ETC/RT_SiteConfig.d/99-crm-gateway.pm <<EOF
Set(\$WebPath, "");
Set(\$WebDomain, "127.0.0.1");
Set(\$WebPort, $PORT);
Set(\$WebBaseURL, "$BASE");
Set(\$MailCommand, "mbox");
Set(\$LogToSyslog, undef);
Set(\$LogToSTDERR, "warning");
Set(\$BcryptCost, 4);
1;
EOF
chgrp -R www-data $ETC; chmod -R g+r $ETC
chown -R www-data /var/cache/request-tracker5 "$STATE" 2>/dev/null || true

# 3. A fresh database, so every run starts from the same state.
stop
DB=$(ls /var/lib/dbconfig-common/sqlite3/request-tracker5/* 2>/dev/null | head -1)
[ -n "$DB" ] || DB=/var/lib/dbconfig-common/sqlite3/request-tracker5/rtdb
rm -f "$DB"
mkdir -p "$(dirname "$DB")"
PW=$(mktemp); echo crm-gateway-root > "$PW"
/usr/sbin/rt-setup-database-5 --action init --root-password-file "$PW" </dev/null >"$STATE/init.log" 2>&1 \
  || { rm -f "$PW"; tail "$STATE/init.log" >&2; exit 1; }
rm -f "$PW"
chown -R root:www-data "$(dirname "$DB")"; chmod 0770 "$(dirname "$DB")"; chmod 0660 "$DB"

# 4. Seed through RT's own Perl API: REST2 in 5.0.3 cannot apply user custom fields.
runuser -u www-data -- perl -I/usr/share/request-tracker5/lib - "$API_USER" "$API_PASS" <<'PERL' >&2
use strict; use warnings; use RT; RT::LoadConfig(); RT::Init();
my ($name, $pass) = @ARGV;
my $u = RT::User->new(RT->SystemUser);
my ($ok, $msg) = $u->Create(Name => $name, EmailAddress => "$name\@rt.test", Privileged => 1, Password => $pass);
die "user: $msg" unless $ok;
($ok, $msg) = $u->PrincipalObj->GrantRight(Right => 'SuperUser', Object => RT->System);
die "right: $msg" unless $ok;
sub cf {
    my ($lookup, $cfname, $type, @values) = @_;
    my $cf = RT::CustomField->new(RT->SystemUser);
    my ($id, $m) = $cf->Create(Name => $cfname, Type => $type, MaxValues => 1, LookupType => $lookup);
    die "cf $cfname: $m" unless $id;
    $cf->AddValue(Name => $_) for @values;
    my $target = $lookup eq 'RT::User' ? RT::User->new(RT->SystemUser) : RT::Queue->new(RT->SystemUser);
    ($id, $m) = $cf->AddToObject($target);  # an object without id: applied globally
    die "apply $cfname: $m" unless $id;
}
cf('RT::User', 'Phone', 'Freeform');
cf('RT::User', 'ExternalId', 'Freeform');
cf('RT::User', 'Label', 'Select', 'Gold', 'Silver', 'Platinum');
cf('RT::User', $_, 'Freeform') for qw(Twitter Facebook Instagram);  # handles, per network
cf('RT::Queue-RT::Ticket', 'Order number', 'Freeform');
# No notifications: this instance sends no mail, and mail copies would only repeat comments.
my $scrips = RT::Scrips->new(RT->SystemUser); $scrips->UnLimit;
while (my $s = $scrips->Next) { $s->SetDisabled(1) }
print STDERR "[rt5] seeded\n";
PERL

# 5. Start on loopback with two Starlet workers (each costs ~220 MB), and wait for REST2.
: > "$LOG"; chown www-data "$LOG"
setsid setpriv --reuid=www-data --regid=www-data --init-groups \
  env HOME=/var/lib/request-tracker5 "$RT_SERVER" --host 127.0.0.1 --port "$PORT" --max-workers 2 \
  >>"$LOG" 2>&1 </dev/null &
echo $! > "$PIDFILE"
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -u "$API_USER:$API_PASS" "$BASE/REST/2.0/rt")" = 200 ] && break
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -20 "$LOG" >&2; exit 1; }
  sleep 0.2
done
say "up on $BASE"
echo "RT5_URL=$BASE"
echo "RT5_USER=$API_USER"
echo "RT5_PASSWORD=$API_PASS"
