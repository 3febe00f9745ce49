#include "agent/accounts/pam_verifier.h"

#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace tether::agent::accounts {
namespace {

// What the conversation function needs: the password, read-only.
struct ConversationData {
  const crypto::SecretBytes* password;
};

void FreeResponses(struct pam_response* responses, int count) {
  if (responses == nullptr) return;
  for (int i = 0; i < count; ++i) {
    if (responses[i].resp != nullptr) {
      crypto::Cleanse(responses[i].resp, strlen(responses[i].resp));
      free(responses[i].resp);
    }
  }
  free(responses);
}

// The PAM conversation (pam_conv(3)). Linux-PAM passes `messages` as an array of pointers.
int Converse(int count, const struct pam_message** messages, struct pam_response** responses_out,
             void* appdata) {
  if (count <= 0 || count > PAM_MAX_NUM_MSG || messages == nullptr || responses_out == nullptr ||
      appdata == nullptr) {
    return PAM_CONV_ERR;
  }
  const crypto::SecretBytes& password = *static_cast<ConversationData*>(appdata)->password;
  auto* responses =
      static_cast<struct pam_response*>(calloc(static_cast<size_t>(count), sizeof(pam_response)));
  if (responses == nullptr) return PAM_BUF_ERR;
  for (int i = 0; i < count; ++i) {
    switch (messages[i]->msg_style) {
      case PAM_PROMPT_ECHO_OFF: {
        // PAM takes ownership of the copy and frees it; the modules wipe it first.
        char* copy = static_cast<char*>(malloc(password.size() + 1));
        if (copy == nullptr) {
          FreeResponses(responses, count);
          return PAM_BUF_ERR;
        }
        memcpy(copy, password.data(), password.size());
        copy[password.size()] = '\0';
        responses[i].resp = copy;
        break;
      }
      case PAM_ERROR_MSG:
      case PAM_TEXT_INFO:
        break;  // nobody to show them to; the result code says what went wrong
      default:
        // PAM_PROMPT_ECHO_ON asks for something other than the password (a username, a
        // one-time code) that the job cannot supply.
        FreeResponses(responses, count);
        return PAM_CONV_ERR;
    }
  }
  *responses_out = responses;
  return PAM_SUCCESS;
}

absl::Status ResultStatus(int result, pam_handle_t* pamh, absl::string_view service,
                          absl::string_view username) {
  switch (result) {
    case PAM_SUCCESS:
      return absl::OkStatus();
    case PAM_USER_UNKNOWN:
      return absl::NotFoundError(absl::StrCat("unknown account \"", username, "\""));
    case PAM_AUTH_ERR:
      return absl::PermissionDeniedError(absl::StrCat("wrong password for \"", username, "\""));
    case PAM_ACCT_EXPIRED:
    case PAM_NEW_AUTHTOK_REQD:
    case PAM_AUTHTOK_EXPIRED:
    case PAM_PERM_DENIED:
    case PAM_MAXTRIES:
      return absl::PermissionDeniedError(
          absl::StrCat("account \"", username, "\" may not sign in: ", pam_strerror(pamh, result)));
    default:
      return absl::UnavailableError(absl::StrCat("PAM service \"", service, "\" failed for \"",
                                                 username, "\": ", pam_strerror(pamh, result)));
  }
}

}  // namespace

PamAccountVerifier::PamAccountVerifier(std::string service, std::string confdir)
    : service_(std::move(service)), confdir_(std::move(confdir)) {}

absl::Status PamAccountVerifier::Verify(absl::string_view username,
                                        const crypto::SecretBytes& password) {
  if (username.empty() || username.find('\0') != absl::string_view::npos) {
    return absl::NotFoundError(absl::StrCat("unknown account \"", username, "\""));
  }
  if (password.empty() || password.view().find('\0') != absl::string_view::npos) {
    return absl::PermissionDeniedError(absl::StrCat("wrong password for \"", username, "\""));
  }
  const std::string user(username);
  ConversationData data{&password};
  const struct pam_conv conversation = {Converse, &data};

  absl::MutexLock lock(&mu_);
  pam_handle_t* pamh = nullptr;
  int result = pam_start_confdir(service_.c_str(), user.c_str(), &conversation,
                                 confdir_.empty() ? nullptr : confdir_.c_str(), &pamh);
  if (result != PAM_SUCCESS) {
    // pam_strerror ignores its handle; there is none to pass.
    absl::Status status = absl::UnavailableError(
        absl::StrCat("PAM service \"", service_, "\" cannot start: ", pam_strerror(pamh, result)));
    if (pamh != nullptr) pam_end(pamh, result);
    return status;
  }
  constexpr int kFlags = PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK;
  result = pam_authenticate(pamh, kFlags);
  if (result == PAM_SUCCESS) result = pam_acct_mgmt(pamh, kFlags);
  absl::Status status = ResultStatus(result, pamh, service_, username);
  // pam_end wipes and frees the password PAM kept (PAM_AUTHTOK).
  pam_end(pamh, result);
  return status;
}

}  // namespace tether::agent::accounts
