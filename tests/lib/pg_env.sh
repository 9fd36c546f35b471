# pg_env.sh: which PostgreSQL the tests run against (sourced).
#
# Sets MANA_PG_MAJOR (15, 17, 18: the major of pg_config) and
# MANA_EXT_CONF, the postgresql.conf lines that make a server find
# mana_ai's control, script and library files in the staged install
# MANA_STAGE before the system's: the one place the harness knows how
# each major does it.
#   15 to 17: Debian's extension_destdir (prefixed to the share dir)
#   18:       extension_control_path (upstream's replacement)
# and on every major dynamic_library_path, with module_pathname = 'mana_ai'
# in mana_ai.control so CREATE FUNCTION resolves the library through it.
MANA_PG_MAJOR=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
mana_ext_settings() {  # STAGE -> name=value lines
    local stage=$1 libdir sharedir
    libdir=$(pg_config --pkglibdir); sharedir=$(pg_config --sharedir)
    if [ "$MANA_PG_MAJOR" -ge 18 ]; then
        echo "extension_control_path=$stage$sharedir:\$system"
    else
        echo "extension_destdir=$stage"
    fi
    echo "dynamic_library_path=$stage$libdir:\$libdir"
}
mana_ext_conf() {  # STAGE -> postgresql.conf lines
    mana_ext_settings "$1" | sed "s/=\(.*\)/ = '\1'/"
}
export MANA_PG_MAJOR
