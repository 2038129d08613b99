// memnodectl's commands by resource. Each Add*Commands declares its commands
// (words, arguments, flags, handler) in a CommandSet (client/cpp/command.h);
// the files under commands/ hold the handlers and their output.
//
// Thread safety: declarations are made once, by main(), before parsing.

#ifndef MEMNODE_CLIENT_CPP_COMMANDS_COMMANDS_H_
#define MEMNODE_CLIENT_CPP_COMMANDS_COMMANDS_H_

#include "client/cpp/command.h"
#include "client/cpp/context.h"

namespace memnode {
namespace cli {

void AddMachineCommands(CommandSet& set);     // machine.cc: machine *, page *
void AddSnapshotCommands(CommandSet& set);    // machine.cc: snapshot save / load
void AddProcessCommands(CommandSet& set);     // process.cc: process *, mmap ... madvise
void AddMemoryCommands(CommandSet& set);      // memory.cc: write, fill, read ... translate
void AddKsmCommands(CommandSet& set);         // ksm.cc: ksm *
void AddBlockCommands(CommandSet& set);       // block.cc: block *, notifier *
void AddNumaCommands(CommandSet& set);        // numa.cc: mempolicy *, mbind, *-pages
void AddWatchCommand(CommandSet& set);        // events.cc: watch
void AddTopCommand(CommandSet& set);          // top.cc: top
void AddHealthCommand(CommandSet& set);       // health.cc: health
void AddCompletionCommands(CommandSet& set);  // completion.cc: completion, help

// commands.cc: the global flags (root command) into *flags, and every
// command in the order `memnodectl help` lists them.
void AddGlobalFlags(CommandSet& set, GlobalFlags* flags);
void AddAllCommands(CommandSet& set);

}  // namespace cli
}  // namespace memnode

#endif  // MEMNODE_CLIENT_CPP_COMMANDS_COMMANDS_H_
