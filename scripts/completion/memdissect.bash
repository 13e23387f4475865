# bash completion for memdissect: commands, each command's options, process ids, plugin names,
# files and directories where an option takes one.
_memdissect()
{
	local cur prev cmd
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	cmd=${COMP_WORDS[1]}
	local commands="attach watch diff core snapshot cgroup system plugins --help --version"
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		return
	fi
	case $prev in
	--plugin)
		COMPREPLY=($(compgen -W "$(memdissect plugins 2>/dev/null | awk '$2 == "ok" {print $1}')" -- "$cur"))
		return ;;
	--format)
		COMPREPLY=($(compgen -W "text json openmetrics" -- "$cur")); return ;;
	--debuginfo)
		COMPREPLY=($(compgen -W "auto off" -- "$cur")); return ;;
	--copy)
		COMPREPLY=($(compgen -W "auto memory stream" -- "$cur")); return ;;
	--html|-o|--output|--exe)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--sysroot|--textfile)
		COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--pid)
		COMPREPLY=($(compgen -W "$(ls /proc | grep -E '^[0-9]+$')" -- "$cur")); return ;;
	--interval|--count|--top|--wss|--max-pause|--hold-pause)
		return ;;
	esac
	local common="--color --no-color --debuginfo= --offline --plugin --hold-pause --help"
	local opts
	case $cmd in
	attach) opts="$common --json --format --top --map --html --wss" ;;
	watch) opts="$common --json --interval --count --wss --textfile" ;;
	diff) opts="--color --no-color --json --top --help" ;;
	core) opts="$common --json --format --top --map --html --exe --sysroot" ;;
	snapshot) opts="--debuginfo= --offline --plugin --hold-pause --copy --max-pause -o --output --help" ;;
	cgroup) opts="--json --html --top --pid --attach --color --no-color --debuginfo= --plugin --help" ;;
	system) opts="--json --html --top --color --no-color --help" ;;
	*) return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		[[ ${COMPREPLY[0]} == *= ]] && compopt -o nospace
		return
	fi
	case $cmd in
	attach|watch|snapshot)
		COMPREPLY=($(compgen -W "$(ls /proc | grep -E '^[0-9]+$')" -- "$cur")) ;;
	diff|core)
		COMPREPLY=($(compgen -f -- "$cur")) ;;
	cgroup)
		COMPREPLY=($(compgen -d -- "$cur")) ;;
	esac
}
complete -F _memdissect memdissect
