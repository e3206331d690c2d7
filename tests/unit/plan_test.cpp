// Unit tests for w3b/plan: every guard against the deployed program's quirks,
// every validation rule, and, end to end, that each planned command applied to
// the program model leaves exactly what the user asked for.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "program/w3bstreaming.hpp"
#include "util/error.hpp"
#include "w3b/messages.hpp"
#include "w3b/plan.hpp"

namespace p2p::w3b {
namespace {

ActorId actor(std::uint8_t fill) {
  ActorId a{};
  a.fill(fill);
  return a;
}

const ActorId kAdmin = actor(0xAD);
const ActorId kAlice = actor(0xA1);
const ActorId kBob = actor(0xB0);
const ActorId kCarol = actor(0xC0);

constexpr std::uint64_t kNow = 1'800'000'000'000;
constexpr std::uint64_t kHour = 3'600'000;

using OptStr = std::optional<std::string>;
// Patch shorthands: keep (outer nullopt), clear (inner nullopt), set.
const Patch<std::string> kKeep = std::nullopt;
const Patch<std::string> kClear = OptStr{};
Patch<std::string> to(std::string v) { return OptStr{std::move(v)}; }

Profile profile(OptStr name, OptStr surname, OptStr img, OptStr tz) {
  Profile p;
  p.name = std::move(name);
  p.surname = std::move(surname);
  p.img_link = std::move(img);
  p.time_zone = std::move(tz);
  return p;
}

ProgramState state_with(const ActorId& who, const Profile& p) {
  ProgramState st;
  st.users.emplace_back(who, p);
  return st;
}

Stream stream(std::uint64_t start, std::uint64_t end, OptStr description) {
  return Stream{kAlice, start, end, "Title", "https://i/s.png", std::move(description)};
}

ProgramState state_with_stream(const std::string& id, const Stream& s) {
  ProgramState st = state_with(kAlice, profile("A", std::nullopt, std::nullopt, std::nullopt));
  st.users[0].second.stream_ids.push_back(id);
  st.streams.emplace_back(id, s);
  return st;
}

NewStream good_stream() {
  return NewStream{"Launch", std::string("about it"), kNow + kHour, kNow + 2 * kHour, "https://i/l.png"};
}

template <class T>
const T& as(const Plan& p) {
  const T* c = std::get_if<T>(&p.command);
  if (!c) throw std::logic_error("the plan holds another command");
  return *c;
}

// ---------------------------------------------------------------------------------------------
// plan_new_stream

TEST(PlanNewStream, PassesAValidStreamThroughUnchanged) {
  Plan p = plan_new_stream(good_stream(), kNow);
  EXPECT_EQ(as<NewStream>(p), good_stream());
  EXPECT_TRUE(p.warnings.empty());
  NewStream no_desc = good_stream();
  no_desc.description = std::nullopt;
  no_desc.img_link = "";
  EXPECT_EQ(as<NewStream>(plan_new_stream(no_desc, kNow)), no_desc);
}

TEST(PlanNewStream, EmptyTitleIsRefused) {
  NewStream s = good_stream();
  s.title = "";
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);
}

TEST(PlanNewStream, EndMustBeAfterStart) {
  NewStream s = good_stream();
  s.end_time = s.start_time;
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);
  s.end_time = s.start_time - 1;
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);
  s.end_time = s.start_time + 1;
  EXPECT_NO_THROW(plan_new_stream(s, kNow));
}

TEST(PlanNewStream, StartInThePastHasOneMinuteOfSlack) {
  NewStream s = good_stream();
  s.start_time = kNow - 60'000;  // "now" typed a minute ago
  s.end_time = kNow + kHour;
  EXPECT_NO_THROW(plan_new_stream(s, kNow));
  s.start_time = kNow - 60'001;
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);
  s.start_time = 0;
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);
  s.start_time = kNow;
  EXPECT_NO_THROW(plan_new_stream(s, kNow));
}

TEST(PlanNewStream, FieldLimitsCountUtf8Bytes) {
  NewStream s = good_stream();
  s.title = std::string(Limits::title, 't');
  EXPECT_NO_THROW(plan_new_stream(s, kNow));
  s.title += "t";
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);
  // 101 two-byte characters are 202 bytes, over the 200-byte limit.
  s.title.clear();
  for (int i = 0; i < 101; ++i) s.title += "\xc3\xa9";
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);

  s = good_stream();
  s.description = std::string(Limits::description, 'd');
  EXPECT_NO_THROW(plan_new_stream(s, kNow));
  s.description->push_back('d');
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);

  s = good_stream();
  s.img_link = std::string(Limits::img_link, 'i');
  EXPECT_NO_THROW(plan_new_stream(s, kNow));
  s.img_link += "i";
  EXPECT_THROW(plan_new_stream(s, kNow), UsageError);
}

// ---------------------------------------------------------------------------------------------
// plan_edit_profile

TEST(PlanEditProfile, NewProfileSendsOnlyWhatWasGiven) {
  ProgramState empty;
  Plan p = plan_edit_profile(empty, kAlice, ProfilePatch{to("Alice"), kKeep, kClear, to("Europe/Berlin")});
  EXPECT_EQ(as<EditProfile>(p), (EditProfile{"Alice", std::nullopt, std::nullopt, "Europe/Berlin"}));
  EXPECT_TRUE(p.warnings.empty()) << "creation stores time_zone correctly, so no warning";
}

TEST(PlanEditProfile, AnotherUsersProfileDoesNotCount) {
  ProgramState st = state_with(kBob, profile("Bob", "B", "https://i/b", "UTC"));
  Plan p = plan_edit_profile(st, kAlice, ProfilePatch{to("Alice"), kKeep, kKeep, kKeep});
  EXPECT_EQ(as<EditProfile>(p), (EditProfile{"Alice", std::nullopt, std::nullopt, std::nullopt}));
  EXPECT_TRUE(p.warnings.empty());
}

TEST(PlanEditProfile, ExistingProfileReSendsUnchangedFields) {
  ProgramState st = state_with(kAlice, profile("Alice", "Doe", "https://i/a", "https://i/a"));
  Plan p = plan_edit_profile(st, kAlice, ProfilePatch{to("Alicia"), kKeep, kKeep, kKeep});
  EXPECT_EQ(as<EditProfile>(p), (EditProfile{"Alicia", "Doe", "https://i/a", "https://i/a"}));
}

TEST(PlanEditProfile, EmptyPatchReSendsEverything) {
  ProgramState st = state_with(kAlice, profile("Alice", "Doe", "https://i/a", "https://i/a"));
  Plan p = plan_edit_profile(st, kAlice, ProfilePatch{});
  EXPECT_EQ(as<EditProfile>(p), (EditProfile{"Alice", "Doe", "https://i/a", "https://i/a"}));
  EXPECT_TRUE(p.warnings.empty());
}

TEST(PlanEditProfile, ClearingOneFieldKeepsTheOthers) {
  ProgramState st = state_with(kAlice, profile("Alice", "Doe", "https://i/a", "https://i/a"));
  Plan p = plan_edit_profile(st, kAlice, ProfilePatch{kKeep, kClear, kKeep, kKeep});
  EXPECT_EQ(as<EditProfile>(p), (EditProfile{"Alice", std::nullopt, "https://i/a", "https://i/a"}));
}

TEST(PlanEditProfile, TimeZoneWarningWhenTheStoredValueWouldDiffer) {
  // Stored time_zone "UTC" but img "https://i/a": any edit turns time_zone into the link.
  ProgramState st = state_with(kAlice, profile("Alice", std::nullopt, "https://i/a", "UTC"));
  Plan p = plan_edit_profile(st, kAlice, ProfilePatch{to("Alicia"), kKeep, kKeep, kKeep});
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("time_zone"), std::string::npos) << p.warnings[0];
  EXPECT_NE(p.warnings[0].find("https://i/a"), std::string::npos) << "names what it will read back as";

  // Asking for a zone explicitly while keeping the link.
  st = state_with(kAlice, profile("Alice", std::nullopt, "https://i/a", "https://i/a"));
  p = plan_edit_profile(st, kAlice, ProfilePatch{kKeep, kKeep, kKeep, to("Asia/Kolkata")});
  EXPECT_EQ(p.warnings.size(), 1u);
  EXPECT_EQ(as<EditProfile>(p).time_zone, "Asia/Kolkata") << "the command still carries what was asked";

  // Clearing the link while a zone is kept: it will read back as unset.
  st = state_with(kAlice, profile("Alice", std::nullopt, "https://i/a", "UTC"));
  p = plan_edit_profile(st, kAlice, ProfilePatch{kKeep, kKeep, kClear, kKeep});
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("unset"), std::string::npos) << p.warnings[0];
}

TEST(PlanEditProfile, NoTimeZoneWarningWhenTheStoredValueWouldNotChange) {
  ProgramState st = state_with(kAlice, profile("Alice", std::nullopt, "https://i/a", "https://i/a"));
  EXPECT_TRUE(plan_edit_profile(st, kAlice, ProfilePatch{to("Alicia"), kKeep, kKeep, kKeep}).warnings.empty());
  // Both unset.
  st = state_with(kAlice, profile("Alice", std::nullopt, std::nullopt, std::nullopt));
  EXPECT_TRUE(plan_edit_profile(st, kAlice, ProfilePatch{to("Alicia"), kKeep, kKeep, kKeep}).warnings.empty());
  // A new link given as the zone too.
  st = state_with(kAlice, profile("Alice", std::nullopt, "https://i/a", "UTC"));
  EXPECT_TRUE(plan_edit_profile(st, kAlice, ProfilePatch{kKeep, kKeep, to("x"), to("x")}).warnings.empty());
  // Clearing both.
  EXPECT_TRUE(plan_edit_profile(st, kAlice, ProfilePatch{kKeep, kKeep, kClear, kClear}).warnings.empty());
}

TEST(PlanEditProfile, OversizeFieldsAreRefused) {
  ProgramState empty;
  const std::string name_max(Limits::name, 'n');
  EXPECT_NO_THROW(plan_edit_profile(empty, kAlice, ProfilePatch{to(name_max), to(name_max), kKeep, kKeep}));
  EXPECT_THROW(plan_edit_profile(empty, kAlice, ProfilePatch{to(name_max + "n"), kKeep, kKeep, kKeep}), UsageError);
  EXPECT_THROW(plan_edit_profile(empty, kAlice, ProfilePatch{kKeep, to(name_max + "n"), kKeep, kKeep}), UsageError);
  EXPECT_THROW(plan_edit_profile(empty, kAlice,
                                 ProfilePatch{kKeep, kKeep, to(std::string(Limits::img_link + 1, 'i')), kKeep}),
               UsageError);
  EXPECT_THROW(plan_edit_profile(empty, kAlice,
                                 ProfilePatch{kKeep, kKeep, kKeep, to(std::string(Limits::time_zone + 1, 'z'))}),
               UsageError);
  // The same limits apply when editing an existing profile.
  ProgramState st = state_with(kAlice, profile("Alice", std::nullopt, std::nullopt, std::nullopt));
  EXPECT_THROW(plan_edit_profile(st, kAlice, ProfilePatch{to(name_max + "n"), kKeep, kKeep, kKeep}), UsageError);
}

// ---------------------------------------------------------------------------------------------
// plan_edit_stream

TEST(PlanEditStream, KeepsTheDescriptionUnlessChangedOrCleared) {
  ProgramState st = state_with_stream("1Title", stream(kNow, kNow + kHour, "the description"));
  StreamPatch title_only;
  title_only.title = "Renamed";
  const Plan plan = plan_edit_stream(st, kAlice, "1Title", title_only);
  EXPECT_EQ(as<EditStream>(plan), (EditStream{"1Title", std::nullopt, std::nullopt, "Renamed", std::nullopt, "the description"}));

  StreamPatch changed;
  changed.description = to("new words");
  EXPECT_EQ(as<EditStream>(plan_edit_stream(st, kAlice, "1Title", changed)).description, "new words");

  StreamPatch cleared;
  cleared.description = kClear;
  EXPECT_EQ(as<EditStream>(plan_edit_stream(st, kAlice, "1Title", cleared)).description, std::nullopt);
}

TEST(PlanEditStream, PassesOtherFieldsThroughAsGiven) {
  ProgramState st = state_with_stream("1Title", stream(kNow, kNow + kHour, std::nullopt));
  StreamPatch p;
  p.start_time = kNow + 10;
  p.end_time = kNow + 20;
  p.img_link = "https://i/new";
  Plan plan = plan_edit_stream(st, kAlice, "1Title", p);
  EXPECT_EQ(as<EditStream>(plan),
            (EditStream{"1Title", kNow + 10, kNow + 20, std::nullopt, "https://i/new", std::nullopt}));
  EXPECT_TRUE(plan.warnings.empty());
}

TEST(PlanEditStream, UnknownStreamSendsWhatWasGiven) {
  // The program answers "Id is not exist"; the plan does not invent a description.
  ProgramState empty;
  StreamPatch p;
  p.title = "T";
  EXPECT_EQ(as<EditStream>(plan_edit_stream(empty, kAlice, "nope", p)),
            (EditStream{"nope", std::nullopt, std::nullopt, "T", std::nullopt, std::nullopt}));
  p.description = to("d");
  EXPECT_EQ(as<EditStream>(plan_edit_stream(empty, kAlice, "nope", p)).description, "d");
}

TEST(PlanEditStream, TimeChecksUseTheMergedValues) {
  ProgramState st = state_with_stream("id", stream(1000, 2000, std::nullopt));
  auto with = [](std::optional<std::uint64_t> s, std::optional<std::uint64_t> e) {
    StreamPatch p;
    p.start_time = s;
    p.end_time = e;
    return p;
  };
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", with(std::nullopt, 1000)), UsageError) << "end == stored start";
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", with(std::nullopt, 500)), UsageError) << "end before stored start";
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", with(2000, std::nullopt)), UsageError) << "start == stored end";
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", with(3000, std::nullopt)), UsageError) << "start after stored end";
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", with(3000, 3000)), UsageError);
  EXPECT_NO_THROW(plan_edit_stream(st, kAlice, "id", with(1500, std::nullopt)));
  EXPECT_NO_THROW(plan_edit_stream(st, kAlice, "id", with(std::nullopt, 1001)));
  EXPECT_NO_THROW(plan_edit_stream(st, kAlice, "id", with(3000, 4000))) << "moving both later";
  EXPECT_NO_THROW(plan_edit_stream(st, kAlice, "id", with(10, 20))) << "moving both earlier";

  // Unknown stream: only a pair given together can be checked.
  ProgramState empty;
  EXPECT_THROW(plan_edit_stream(empty, kAlice, "x", with(20, 10)), UsageError);
  EXPECT_NO_THROW(plan_edit_stream(empty, kAlice, "x", with(20, std::nullopt)));
}

TEST(PlanEditStream, EmptyTitleAndOversizeFieldsAreRefused) {
  ProgramState st = state_with_stream("id", stream(1000, 2000, std::nullopt));
  StreamPatch p;
  p.title = "";
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", p), UsageError);
  p.title = std::string(Limits::title + 1, 't');
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", p), UsageError);
  p.title = std::string(Limits::title, 't');
  EXPECT_NO_THROW(plan_edit_stream(st, kAlice, "id", p));

  StreamPatch d;
  d.description = to(std::string(Limits::description + 1, 'd'));
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", d), UsageError);
  StreamPatch i;
  i.img_link = std::string(Limits::img_link + 1, 'i');
  EXPECT_THROW(plan_edit_stream(st, kAlice, "id", i), UsageError);
}

// ---------------------------------------------------------------------------------------------
// plan_delete_stream, subscriptions

TEST(PlanDeleteStream, NeedsAnId) {
  EXPECT_EQ(as<DeleteStream>(plan_delete_stream("123abc")), DeleteStream{"123abc"});
  EXPECT_THROW(plan_delete_stream(""), UsageError);
}

ProgramState alice_follows_bob() {
  ProgramState st;
  Profile a = profile("A", std::nullopt, std::nullopt, std::nullopt);
  a.subscriptions.push_back(Subscription{kBob, 5});
  Profile b = profile("B", std::nullopt, std::nullopt, std::nullopt);
  b.subscribers.push_back(kAlice);
  st.users.emplace_back(kAlice, a);
  st.users.emplace_back(kBob, b);
  st.users.emplace_back(kCarol, profile("C", std::nullopt, std::nullopt, std::nullopt));
  return st;
}

TEST(PlanSubscribe, IsSubscribedReadsTheWatchersSubscriptions) {
  ProgramState st = alice_follows_bob();
  EXPECT_TRUE(is_subscribed(st, kAlice, kBob));
  EXPECT_FALSE(is_subscribed(st, kBob, kAlice)) << "direction matters";
  EXPECT_FALSE(is_subscribed(st, kAlice, kCarol));
  EXPECT_FALSE(is_subscribed(st, kAdmin, kBob)) << "no profile, no subscriptions";
}

TEST(PlanSubscribe, DuplicateIsRefusedAndNothingIsSent) {
  ProgramState st = alice_follows_bob();
  try {
    plan_subscribe(st, kAlice, kBob);
    FAIL() << "a duplicate subscription was planned";
  } catch (const RefusedError& e) {
    EXPECT_NE(std::string(e.what()).find("already subscribed"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), Exit::refused);
  }
}

TEST(PlanSubscribe, NewSubscriptionIsPlanned) {
  ProgramState st = alice_follows_bob();
  EXPECT_EQ(as<Subscribe>(plan_subscribe(st, kAlice, kCarol)), Subscribe{kCarol});
  EXPECT_EQ(as<Subscribe>(plan_subscribe(st, kBob, kAlice)), Subscribe{kAlice});
  // Registration is the program's to check; the plan passes it on.
  EXPECT_EQ(as<Subscribe>(plan_subscribe(st, kAdmin, kBob)), Subscribe{kBob});
}

TEST(PlanSubscribe, SubscribingToYourselfIsAUsageError) {
  ProgramState st = alice_follows_bob();
  EXPECT_THROW(plan_subscribe(st, kCarol, kCarol), UsageError);
  EXPECT_THROW(plan_subscribe(ProgramState{}, kAdmin, kAdmin), UsageError);
}

TEST(PlanUnsubscribe, OnlyWhenSubscribed) {
  ProgramState st = alice_follows_bob();
  EXPECT_EQ(as<Unsubscribe>(plan_unsubscribe(st, kAlice, kBob)), Unsubscribe{kBob});
  EXPECT_THROW(plan_unsubscribe(st, kAlice, kCarol), RefusedError);
  EXPECT_THROW(plan_unsubscribe(st, kBob, kAlice), RefusedError);
  EXPECT_THROW(plan_unsubscribe(st, kAdmin, kBob), RefusedError);
  try {
    plan_unsubscribe(st, kAlice, kCarol);
  } catch (const RefusedError& e) {
    EXPECT_NE(std::string(e.what()).find("not subscribed"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Applied to the program model: the guards are what make the result right.

class PlanOnModel : public ::testing::Test {
 protected:
  PlanOnModel() : prog_(program::W3Bstreaming::deploy(kAdmin)) {}

  // Sends the plan's command as bytes, as the CLI would, and asserts success.
  void apply(const ActorId& sender, const Plan& plan) {
    program::Outcome out = prog_.handle(sender, encode_command(plan.command), ts_ += 1000);
    ASSERT_TRUE(out.ok) << out.panic;
  }
  const ProgramState& st() const { return prog_.state(); }
  const Profile& user(const ActorId& who) const { return *st().find_user(who); }

  program::W3Bstreaming prog_;
  std::uint64_t ts_ = kNow;
};

TEST_F(PlanOnModel, ProfileSetNameOnlyKeepsSurnameAndImage) {
  apply(kAlice, plan_edit_profile(st(), kAlice, ProfilePatch{to("Alice"), to("Doe"), to("https://i/a"), to("UTC")}));
  ASSERT_EQ(user(kAlice).time_zone, "UTC") << "creation keeps the zone";

  Plan p = plan_edit_profile(st(), kAlice, ProfilePatch{to("Alicia"), kKeep, kKeep, kKeep});
  apply(kAlice, p);
  EXPECT_EQ(user(kAlice).name, "Alicia");
  EXPECT_EQ(user(kAlice).surname, "Doe");
  EXPECT_EQ(user(kAlice).img_link, "https://i/a");
  // The quirk still bites the zone, and the plan said so beforehand.
  EXPECT_EQ(user(kAlice).time_zone, "https://i/a");
  EXPECT_EQ(p.warnings.size(), 1u);

  // Without the guard, the same request clears everything but the name.
  program::W3Bstreaming naive = prog_;
  ASSERT_TRUE(naive.handle(kAlice, encode_command(EditProfile{"Alicia", std::nullopt, std::nullopt, std::nullopt}),
                           ts_ + 1)
                  .ok);
  EXPECT_EQ(naive.state().find_user(kAlice)->surname, std::nullopt);
}

TEST_F(PlanOnModel, ProfileClearSurnameOnlyClearsTheSurname) {
  apply(kAlice, plan_edit_profile(st(), kAlice, ProfilePatch{to("Alice"), to("Doe"), to("https://i/a"), kKeep}));
  apply(kAlice, plan_edit_profile(st(), kAlice, ProfilePatch{kKeep, kClear, kKeep, kKeep}));
  EXPECT_EQ(user(kAlice).name, "Alice");
  EXPECT_EQ(user(kAlice).surname, std::nullopt);
  EXPECT_EQ(user(kAlice).img_link, "https://i/a");
}

TEST_F(PlanOnModel, ProfileEditKeepsStreamsAndSubscriptions) {
  apply(kAlice, plan_edit_profile(st(), kAlice, ProfilePatch{to("Alice"), kKeep, kKeep, kKeep}));
  apply(kBob, plan_edit_profile(st(), kBob, ProfilePatch{to("Bob"), kKeep, kKeep, kKeep}));
  apply(kAlice, plan_new_stream(good_stream(), ts_));
  apply(kBob, plan_subscribe(st(), kBob, kAlice));
  const Profile before = user(kAlice);
  apply(kAlice, plan_edit_profile(st(), kAlice, ProfilePatch{kKeep, to("Smith"), kKeep, kKeep}));
  EXPECT_EQ(user(kAlice).stream_ids, before.stream_ids);
  EXPECT_EQ(user(kAlice).subscribers, before.subscribers);
  EXPECT_EQ(user(kAlice).surname, "Smith");
  EXPECT_EQ(user(kAlice).name, "Alice");
}

// For every stored profile and every patch: the warning appears exactly when the
// time_zone the model stores differs from the one asked for, and every other field
// ends up as asked.
TEST_F(PlanOnModel, TimeZoneWarningIsExactlyWhenTheStoredZoneDiffers) {
  const std::vector<OptStr> values = {std::nullopt, std::string("https://i/a"), std::string("UTC")};
  const std::vector<Patch<std::string>> patches = {kKeep, kClear, to("https://i/a"), to("UTC"), to("other")};
  int warned = 0, quiet = 0;
  for (bool exists : {false, true})
    for (const auto& img : values)
      for (const auto& tz : values)
        for (const auto& pimg : patches)
          for (const auto& ptz : patches) {
            program::W3Bstreaming prog = program::W3Bstreaming::deploy(kAdmin);
            if (exists)
              prog = program::W3Bstreaming(state_with(kAlice, profile("Alice", "Doe", img, tz)));
            const ProfilePatch patch{kKeep, kKeep, pimg, ptz};
            Plan plan = plan_edit_profile(prog.state(), kAlice, patch);
            const EditProfile& asked = as<EditProfile>(plan);
            ASSERT_TRUE(prog.handle(kAlice, encode_command(plan.command), kNow).ok);
            const Profile& got = *prog.state().find_user(kAlice);
            SCOPED_TRACE(::testing::Message() << "exists=" << exists << " img=" << img.value_or("-")
                                              << " tz=" << tz.value_or("-"));
            // What was asked: the patch where given, else what is stored (new profile: unset).
            const OptStr want_img = pimg ? *pimg : (exists ? img : std::nullopt);
            const OptStr want_tz = ptz ? *ptz : (exists ? tz : std::nullopt);
            EXPECT_EQ(asked.img_link, want_img);
            EXPECT_EQ(asked.time_zone, want_tz);
            EXPECT_EQ(got.img_link, want_img);
            EXPECT_EQ(got.name, exists ? OptStr("Alice") : std::nullopt);
            EXPECT_EQ(got.surname, exists ? OptStr("Doe") : std::nullopt);
            EXPECT_EQ(!plan.warnings.empty(), got.time_zone != want_tz)
                << "stored tz " << got.time_zone.value_or("-") << ", asked " << want_tz.value_or("-");
            EXPECT_LE(plan.warnings.size(), 1u);
            (plan.warnings.empty() ? quiet : warned)++;
          }
  EXPECT_GT(warned, 0);
  EXPECT_GT(quiet, 0);
}

TEST_F(PlanOnModel, EditTitleKeepsTheDescription) {
  apply(kAlice, plan_edit_profile(st(), kAlice, ProfilePatch{to("Alice"), kKeep, kKeep, kKeep}));
  apply(kAlice, plan_new_stream(good_stream(), ts_));
  const std::string id = st().streams.at(0).first;

  StreamPatch title;
  title.title = "Relaunch";
  apply(kAlice, plan_edit_stream(st(), kAlice, id, title));
  const Stream* s = st().find_stream(id);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->title, "Relaunch");
  EXPECT_EQ(s->description, "about it");
  EXPECT_EQ(s->start_time, good_stream().start_time);
  EXPECT_EQ(s->end_time, good_stream().end_time);
  EXPECT_EQ(s->img_link, good_stream().img_link);

  // The naive command (description unset) would have cleared it.
  program::W3Bstreaming naive = prog_;
  ASSERT_TRUE(naive.handle(kAlice, encode_command(EditStream{id, std::nullopt, std::nullopt, "X", std::nullopt,
                                                             std::nullopt}),
                           ts_ + 1)
                  .ok);
  EXPECT_EQ(naive.state().find_stream(id)->description, std::nullopt);

  StreamPatch clear;
  clear.description = kClear;
  apply(kAlice, plan_edit_stream(st(), kAlice, id, clear));
  EXPECT_EQ(st().find_stream(id)->description, std::nullopt);
  EXPECT_EQ(st().find_stream(id)->title, "Relaunch");

  StreamPatch later;
  later.end_time = good_stream().end_time + kHour;
  apply(kAlice, plan_edit_stream(st(), kAlice, id, later));
  EXPECT_EQ(st().find_stream(id)->end_time, good_stream().end_time + kHour);
  EXPECT_EQ(st().find_stream(id)->start_time, good_stream().start_time);
}

TEST_F(PlanOnModel, NewStreamIsStoredAsGiven) {
  apply(kAlice, plan_edit_profile(st(), kAlice, ProfilePatch{to("Alice"), kKeep, kKeep, kKeep}));
  apply(kAlice, plan_new_stream(good_stream(), ts_));
  ASSERT_EQ(st().streams.size(), 1u);
  const Stream& s = st().streams[0].second;
  EXPECT_EQ(s.broadcaster, kAlice);
  EXPECT_EQ(s.title, "Launch");
  EXPECT_EQ(s.description, "about it");
  EXPECT_EQ(s.start_time, good_stream().start_time);
  EXPECT_EQ(s.end_time, good_stream().end_time);
  EXPECT_EQ(user(kAlice).stream_ids, std::vector<std::string>{st().streams[0].first});

  apply(kAlice, plan_delete_stream(st().streams[0].first));
  EXPECT_TRUE(st().streams.empty());
}

TEST_F(PlanOnModel, SubscribeOnceEvenWhenAskedTwice) {
  apply(kAlice, plan_edit_profile(st(), kAlice, ProfilePatch{to("Alice"), kKeep, kKeep, kKeep}));
  apply(kBob, plan_edit_profile(st(), kBob, ProfilePatch{to("Bob"), kKeep, kKeep, kKeep}));
  apply(kBob, plan_subscribe(st(), kBob, kAlice));
  EXPECT_THROW(plan_subscribe(st(), kBob, kAlice), RefusedError);
  EXPECT_EQ(user(kAlice).subscribers, std::vector<ActorId>{kBob});
  ASSERT_EQ(user(kBob).subscriptions.size(), 1u);
  EXPECT_EQ(user(kBob).subscriptions[0].account_id, kAlice);

  // The program itself would record the duplicate: that is what the guard prevents.
  program::W3Bstreaming naive = prog_;
  ASSERT_TRUE(naive.handle(kBob, encode_command(Subscribe{kAlice}), ts_ + 1).ok);
  EXPECT_EQ(naive.state().find_user(kAlice)->subscribers.size(), 2u);

  apply(kBob, plan_unsubscribe(st(), kBob, kAlice));
  EXPECT_TRUE(user(kAlice).subscribers.empty());
  EXPECT_TRUE(user(kBob).subscriptions.empty());
  EXPECT_THROW(plan_unsubscribe(st(), kBob, kAlice), RefusedError);
}

}  // namespace
}  // namespace p2p::w3b
