// login, whoami, users, tokens.
#include <limits.h>
#include <stdlib.h>

#include "absl/strings/str_cat.h"
#include "tools/tetherctl/commands.h"
#include "tools/tetherctl/config.h"
#include "tools/tetherctl/output.h"

namespace tether::tetherctl {
namespace {

// Printable ASCII without spaces: what an HTTP header value (the bearer token) may carry.
absl::Status CheckTokenText(const crypto::SecretBytes& token) {
  for (char c : token.view()) {
    if (c <= ' ' || c >= 0x7f) {
      return absl::InvalidArgumentError("the token holds spaces or control characters: is it the right file?");
    }
  }
  return absl::OkStatus();
}

std::string UserText(const proto::User& user) {
  return absl::StrCat(user.name(), " (", user.user_id(), ")", user.admin() ? ", admin" : "");
}

absl::Status Login(Invocation& inv) {
  const ParsedArgs& args = inv.args();
  if (args.Has("ca") == args.Has("insecure")) {
    return absl::InvalidArgumentError("give exactly one of --ca FILE and --insecure");
  }
  Config config;
  config.cloud = args.Value("cloud");
  config.insecure = args.Has("insecure");
  if (args.Has("ca")) {
    char resolved[PATH_MAX];
    if (realpath(args.Value("ca").c_str(), resolved) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("cannot find --ca ", args.Value("ca")));
    }
    config.ca_file = resolved;
    if (config.ca_file.find('\n') != std::string::npos) {
      return absl::InvalidArgumentError("the --ca path holds a line break");
    }
  }
  absl::StatusOr<std::string> path = inv.ConfigFile();
  if (!path.ok()) return path.status();
  absl::StatusOr<crypto::SecretBytes> token = inv.ReadSecret("token-file", "API token: ", false);
  if (!token.ok()) return token.status();
  if (absl::Status ok = CheckTokenText(*token); !ok.ok()) return ok;

  absl::StatusOr<std::unique_ptr<CloudClient>> client = CloudClient::Create(
      CloudEndpoint{config.cloud, config.ca_file, config.insecure}, token->Clone());
  if (!client.ok()) return client.status();
  proto::WhoAmIResponse who;
  absl::Status verified = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->users()->WhoAmI(c, proto::WhoAmIRequest(), &who);
  });
  if (!verified.ok()) return verified;

  config.token = *std::move(token);
  if (absl::Status saved = SaveConfig(*path, config); !saved.ok()) return saved;
  absl::StatusOr<bool> json = inv.MaybeJson(who);
  if (!json.ok() || *json) return json.status();
  inv.out() << "logged in to " << config.cloud << " as " << UserText(who.user()) << "\n";
  inv.err() << "config saved in " << *path << " (mode 0600)\n";
  return absl::OkStatus();
}

absl::Status WhoAmI(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  proto::WhoAmIResponse who;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->users()->WhoAmI(c, proto::WhoAmIRequest(), &who);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(who);
  if (!json.ok() || *json) return json.status();
  inv.out() << UserText(who.user()) << " on " << (*client)->address() << "\n";
  return absl::OkStatus();
}

// Prints a token shown once: the secret alone on stdout (easy to capture), the note on stderr.
absl::Status PrintNewToken(Invocation& inv, const proto::NewApiToken& token, const std::string& note) {
  absl::StatusOr<bool> json = inv.MaybeJson(token);
  if (!json.ok() || *json) return json.status();
  inv.err() << note << "; its API token is shown once, keep it now:\n";
  inv.err().flush();
  inv.out() << token.secret() << "\n";
  return absl::OkStatus();
}

absl::Status UsersCreate(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  proto::CreateUserRequest request;
  request.set_name(inv.arg(0));
  request.set_admin(inv.args().Has("admin"));
  proto::NewApiToken token;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->users()->CreateUser(c, request, &token);
  });
  if (!status.ok()) return status;
  return PrintNewToken(inv, token, absl::StrCat("created user ", UserText(token.user())));
}

absl::Status TokensCreate(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  proto::CreateTokenRequest request;
  request.set_label(inv.args().Value("label"));
  proto::NewApiToken token;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->users()->CreateToken(c, request, &token);
  });
  if (!status.ok()) return status;
  return PrintNewToken(inv, token, absl::StrCat("created token ", token.token().token_id()));
}

absl::Status TokensList(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  proto::ListTokensResponse response;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->users()->ListTokens(c, proto::ListTokensRequest(), &response);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(response);
  if (!json.ok() || *json) return json.status();
  Table table({"TOKEN ID", "LABEL", "CREATED", "REVOKED"});
  for (const proto::ApiToken& token : response.tokens()) {
    table.AddRow({token.token_id(), OrDash(token.label()), FormatTime(token.created_at_unix_ms()),
                  FormatTime(token.revoked_at_unix_ms())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status TokensRevoke(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  proto::RevokeTokenRequest request;
  request.set_token_id(inv.arg(0));
  proto::ApiToken token;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->users()->RevokeToken(c, request, &token);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(token);
  if (!json.ok() || *json) return json.status();
  inv.out() << "revoked token " << token.token_id() << " (" << FormatTime(token.revoked_at_unix_ms())
            << ")\n";
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> AccountCommands() {
  return {
      {"login", "", "verify an API token with the cloud and save it in the config file",
       "The token is read from --token-file (its first line), or typed without echo when stdin is a\n"
       "terminal; it is never taken from a flag value or the environment. The config file is written\n"
       "with mode 0600 and refused later if group or others can read it.\n",
       {{"cloud", "HOST:PORT", "the cloud's gRPC address", false, true},
        {"ca", "FILE", "CA certificate (PEM) that verifies the cloud's TLS certificate"},
        {"insecure", "", "plaintext, for a cloud on a loopback address only"},
        {"token-file", "FILE", "read the API token from this file (mode 0600, or a pipe)"}},
       0, 0, Login},
      {"whoami", "", "the user the saved token belongs to", "", {}, 0, 0, WhoAmI},
      {"users create", "NAME", "create a user and its first API token (admins only)",
       "The new token is printed once, alone on stdout.\n",
       {{"admin", "", "the new user may administer users"}}, 1, 1, UsersCreate},
      {"tokens create", "", "create another API token for yourself (printed once)", "",
       {{"label", "LABEL", "free text to recognise the token by"}}, 0, 0, TokensCreate},
      {"tokens list", "", "your API tokens, revoked ones included", "", {}, 0, 0, TokensList},
      {"tokens revoke", "TOKEN_ID", "revoke an API token at once", "", {}, 1, 1, TokensRevoke},
  };
}

}  // namespace tether::tetherctl
