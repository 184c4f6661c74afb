// Child processes for tests that drive external programs (the Java interop
// client, scripts/kafka): spawn with stdout on a pipe (stderr is inherited, so
// the program's diagnostics land in the test log), read it line by line, and
// wait for the exit code. Plus a base64 decoder for the Java client's output.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace prosody::testing {

// posix_spawn rather than fork: the test process runs librdkafka and engine
// threads, and spawn never runs non-async-signal-safe code in the child.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // dup2 clears FD_CLOEXEC on the new descriptor 1.
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error("cannot start " + argv[0] + ": " + std::to_string(rc));
    }
    out_ = ::fdopen(fds[0], "r");
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  ~ChildProcess() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      (void)wait();
    }
    if (out_) ::fclose(out_);
  }

  pid_t pid() const { return pid_; }
  // Sends `sig` unless the process was already waited for.
  void signal(int sig) {
    if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
  }

  // Next stdout line without its newline; nullopt at end of output.
  std::optional<std::string> read_line() {
    char* buf = nullptr;
    std::size_t cap = 0;
    const ssize_t n = ::getline(&buf, &cap, out_);
    std::optional<std::string> line;
    if (n >= 0) {
      line.emplace(buf, static_cast<std::size_t>(n));
      if (!line->empty() && line->back() == '\n') line->pop_back();
    }
    std::free(buf);
    return line;
  }

  // Reads what is left of stdout, then waits for the exit: the exit code, or
  // 128 + signal number.
  int wait() {
    if (exit_code_) return *exit_code_;
    while (read_line()) {
    }
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return *exit_code_;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::optional<int> exit_code_;
};

struct CommandResult {
  int exit_code;
  std::vector<std::string> lines;  // stdout
};

inline CommandResult run_command(const std::vector<std::string>& argv) {
  ChildProcess child(argv);
  CommandResult r{0, {}};
  while (auto line = child.read_line()) r.lines.push_back(std::move(*line));
  r.exit_code = child.wait();
  return r;
}

// Standard base64 (RFC 4648, with or without padding). Throws on bad input.
inline std::string base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  out.reserve(in.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) throw std::invalid_argument("invalid base64 character");
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) throw std::invalid_argument("truncated base64");
  return out;
}

}  // namespace prosody::testing
