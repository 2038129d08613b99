#include "client/cpp/commands/commands.h"

namespace memnode {
namespace cli {

void AddGlobalFlags(CommandSet& set, GlobalFlags* flags) {
  set.root()
      .Flag("--server", &flags->server, "HOST:PORT",
            "server address (default $MEMNODE_SERVER, else 127.0.0.1:50051)")
      .Env("MEMNODE_SERVER")
      .Flag("--machine", &flags->machine, "ID",
            "machine to act on (default \"default\", i.e. machines/default)")
      .Switch("--json", &flags->json, "print one JSON object per command (proto field names)")
      .Flag("--timeout", &flags->timeout_seconds, "SECONDS",
            "deadline of each RPC (default 30; 0 = none)", Seconds(0, 1e9))
      .Flag("--tls-ca", &flags->tls_ca, "PATH",
            "TLS: PEM CA bundle that signed the server's certificate")
      .Flag("--tls-cert", &flags->tls_cert, "PATH",
            "mutual TLS: PEM certificate chain of this client (with --tls-key)")
      .Flag("--tls-key", &flags->tls_key, "PATH", "mutual TLS: PEM private key of --tls-cert")
      .Flag("--token-file", &flags->token_file, "PATH",
            "file holding the bearer token (default $MEMNODE_TOKEN)");
  Param help;
  help.name = "--help";
  help.is_switch = true;
  help.help = "show help (memnodectl COMMAND --help for one command); also -h";
  help.option = set.root().app()->get_help_ptr();
  set.root().Document(std::move(help));
}

void AddAllCommands(CommandSet& set) {
  AddMachineCommands(set);
  AddProcessCommands(set);
  AddMemoryCommands(set);
  AddKsmCommands(set);
  AddBlockCommands(set);
  AddNumaCommands(set);
  AddWatchCommand(set);
  AddTopCommand(set);
  AddSnapshotCommands(set);
  AddHealthCommand(set);
  AddCompletionCommands(set);
}

}  // namespace cli
}  // namespace memnode
