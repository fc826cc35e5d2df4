/**
 * The shell completion scripts `db-refresher completion bash|zsh|fish`
 * prints. They are thin: each hands the words typed so far to
 * `db-refresher __complete -- WORD…`, which prints one candidate a line, or
 * the single line `:files` to ask for the shell's own file name completion.
 */

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

const bash = (bin: string) => `# db-refresher completion for bash. Load it with:
#   source <(db-refresher completion bash)
# or save it as ~/.local/share/bash-completion/completions/db-refresher
_db_refresher_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" out IFS=$'\\n'
  out=$(${bin} __complete -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
  if [[ "$out" == ":files" ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$out" -- "$cur"))
  fi
}
complete -o bashdefault -o default -F _db_refresher_complete ${bin}
`;

const zsh = (bin: string) => `#compdef ${bin}
# db-refresher completion for zsh. Load it with:
#   source <(db-refresher completion zsh)
# (in ~/.zshrc, after compinit)
_db_refresher_complete() {
  local out
  out=$(${bin} __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
  if [[ "$out" == ":files" ]]; then
    _files
  else
    local -a candidates
    candidates=("\${(@f)out}")
    compadd -- "\${candidates[@]}"
  fi
}
# Without compinit there is no compdef: register nothing, and still end with status 0.
if (( $+functions[compdef] )); then
  compdef _db_refresher_complete ${bin}
fi
`;

const fish = (bin: string) => `# db-refresher completion for fish. Load it with:
#   db-refresher completion fish | source
# or save it as ~/.config/fish/completions/${bin}.fish
function __db_refresher_complete
    set -l words (commandline -opc) (commandline -ct)
    set -l out (${bin} __complete -- $words[2..-1] 2>/dev/null)
    if test "$out" = ":files"
        __fish_complete_path (commandline -ct)
    else
        printf '%s\\n' $out
    end
end
complete -c ${bin} -f -a '(__db_refresher_complete)'
`;

export function completionScript(shell: Shell, bin = 'db-refresher'): string {
  switch (shell) {
    case 'bash':
      return bash(bin);
    case 'zsh':
      return zsh(bin);
    case 'fish':
      return fish(bin);
  }
}
